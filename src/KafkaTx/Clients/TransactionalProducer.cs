using Confluent.Kafka;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Clients;

/// <summary>
/// The life of the Confluent.Kafka producer behind a unit of work: creating it, replacing it after a fatal error,
/// disposing it, running its blocking calls, and tracking the delivery reports of its records. It knows nothing of
/// transaction states; the unit of work's <see cref="TransactionOrchestrator"/> decides when to call what.
/// </summary>
/// <remarks>
/// <para>Each producer gets a <see cref="DeliveryTracker"/> of its own, so that late delivery reports of a replaced
/// producer (its purged records, say) never count against the records of its successor.</para>
/// <para>Blocking librdkafka calls (init, commit, abort, send offsets) run through <see cref="BlockingCallRunner"/>.</para>
/// <para>One call at a time per librdkafka handle, and never a disposal under a running call: each handle knows the
/// blocking call running on it (<see cref="ProducerHandle"/>). A second call is refused, and a handle retired (replaced
/// or disposed) while a call runs is disposed when that call returns, if it ever does.</para>
/// </remarks>
internal sealed class TransactionalProducer : IDisposable
{
    private static readonly TimeSpan DeliveryReportWait = TimeSpan.FromSeconds(5);

    private readonly KafkaTransactionsOptions _options;
    private readonly IKafkaClientFactory _clientFactory;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly string _transactionalId;
    private readonly Action<Error> _onClientError;
    private readonly Action<LogMessage> _onClientLog;
    private readonly BlockingCallRunner _blocking;

    // The current producer with its delivery reports and its running call. Replaced, never changed in place.
    private ProducerHandle _client;

    // Set when the unit of work is being disposed: Produce stops waiting for room in a full queue.
    private volatile bool _closing;

    public TransactionalProducer(KafkaTransactionsOptions options, IKafkaClientFactory clientFactory, ILogger logger, TimeProvider time, string transactionalId)
    {
        _options = options;
        _clientFactory = clientFactory;
        _logger = logger;
        _time = time;
        _transactionalId = transactionalId;
        _onClientError = OnClientError;
        _onClientLog = OnClientLog;
        _blocking = new BlockingCallRunner(time, logger, transactionalId);
        Connection = new BrokerConnection($"producer {transactionalId}", logger, time, BrokerConnection.QuietPeriodOf(options.ToProducerConfig()));
        Initialization = new InitProgress(time);
        _client = Create(); // last: its callbacks may run at once, and they use the connection
    }

    /// <summary>Whether the producer reaches its brokers (for health checks), and its connection failures logged once per change.</summary>
    public BrokerConnection Connection { get; }

    /// <summary>Whether InitTransactions is getting anywhere (for health checks).</summary>
    public InitProgress Initialization { get; }

    /// <summary>How many times the producer has been replaced since this object was created.</summary>
    public int Replacements { get; private set; }

    /// <summary>Records produced whose delivery report has not arrived yet.</summary>
    public int PendingDeliveries => _client.Deliveries.Pending;

    // ---------------------------------------------------------------- lifecycle

    /// <summary>
    /// Disposes the current producer without completing its transaction and creates a new one, which must call
    /// InitTransactions before use: that call aborts (or completes) whatever the old producer left open. A call
    /// still running on the old producer keeps it until it returns.
    /// </summary>
    public void Replace()
    {
        var old = _client;
        _client = Create();
        Replacements++;
        old.Retire();
    }

    /// <summary>Disposes the producer now, or when the blocking call running on it returns.</summary>
    public void Dispose()
    {
        _client.Retire();
        Connection.Close();
    }

    /// <summary>The unit of work is being disposed: a Produce waiting for room in the local queue stops waiting.</summary>
    public void StopWaiting() => _closing = true;

    private ProducerHandle Create() =>
        new(_clientFactory.CreateProducer(_options.ToProducerConfig(), _onClientError, _onClientLog), _logger, _transactionalId);

    // ---------------------------------------------------------------- calls

    public void BeginTransaction()
    {
        var client = _client;
        client.Enter("BeginTransaction");
        try
        {
            client.Producer.BeginTransaction();
            client.Deliveries.ClearFailures();
        }
        finally
        {
            client.Exit();
        }
    }

    public async Task InitTransactionsAsync(CancellationToken cancellationToken)
    {
        Initialization.Started();
        try
        {
            await _blocking.RunAsync(_client, "InitTransactions", static (producer, timeout) => producer.InitTransactions(timeout), _options.InitTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException e)
        {
            Initialization.Failed(e);
            throw;
        }

        Initialization.Succeeded();
        Connection.Answered();
    }

    public Task CommitTransactionAsync(CancellationToken cancellationToken) =>
        Answered(_blocking.RunAsync(_client, "CommitTransaction", static (producer, timeout) => producer.CommitTransaction(timeout), _options.CommitTimeout, cancellationToken));

    public Task AbortTransactionAsync(CancellationToken cancellationToken) =>
        Answered(_blocking.RunAsync(_client, "AbortTransaction", static (producer, timeout) => producer.AbortTransaction(timeout), _options.AbortTimeout, cancellationToken));

    public Task SendOffsetsAsync(List<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken) =>
        Answered(_blocking.RunAsync(_client, "SendOffsetsToTransaction", (producer, timeout) => producer.SendOffsetsToTransaction(offsets, groupMetadata, timeout), _options.SendOffsetsTimeout, cancellationToken));

    /// <summary>A blocking call that returned was answered by a broker: the producer is connected.</summary>
    private async Task Answered(Task call)
    {
        await call.ConfigureAwait(false);
        Connection.Answered();
    }

    /// <summary>librdkafka's abort is itself a blocking call: for the synchronous Dispose, calling it directly is not sync-over-async.</summary>
    public void AbortTransactionNow()
    {
        var client = _client;
        client.Enter("AbortTransaction");
        try
        {
            client.Producer.AbortTransaction(_options.AbortTimeout);
        }
        finally
        {
            client.Exit();
        }
    }

    /// <summary>
    /// Produces a record, waiting for room while the local queue is full (as the Java producer's max.block.ms does),
    /// but no longer than a record may take to be delivered, and no longer than the transaction goes on: the wait
    /// stops when <paramref name="cancellation"/> is cancelled (OperationCanceledException) or the unit of work is
    /// being disposed (ObjectDisposedException). The delivery report is tracked.
    /// </summary>
    /// <param name="topic">The topic.</param>
    /// <param name="topicPartition">The partition, or null for the partitioner's choice.</param>
    /// <param name="message">The serialized record.</param>
    /// <param name="track">Whether this record's delivery report is tracked (see <see cref="DeliveryTracking"/>).</param>
    /// <param name="cancellation">The transaction's cancellation: read only while the queue is full.</param>
    public void Produce(string topic, TopicPartition? topicPartition, Message<byte[]?, byte[]?> message, bool track, CancellationToken cancellation)
    {
        var client = _client;
        var deliveries = track ? client.Deliveries : null;
        deliveries?.Sent();
        long waitingSince = 0;
        try
        {
            while (true)
            {
                try
                {
                    if (topicPartition is null)
                    {
                        client.Producer.Produce(topic, message, deliveries?.OnDelivery);
                    }
                    else
                    {
                        client.Producer.Produce(topicPartition, message, deliveries?.OnDelivery);
                    }

                    return;
                }
                catch (ProduceException<byte[]?, byte[]?> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    if (waitingSince == 0)
                    {
                        waitingSince = _time.GetTimestamp();
                        Log.WaitingForQueueRoom(_logger, _transactionalId);
                    }
                    else if (_time.GetElapsedTime(waitingSince) >= _options.DeliveryTimeout)
                    {
                        throw;
                    }

                    StopWaitingIfAsked(topic, e, cancellation);
                    Thread.Sleep(1);
                }
            }
        }
        catch
        {
            deliveries?.NotSent();
            throw;
        }
    }

    private void StopWaitingIfAsked(string topic, Exception queueFull, CancellationToken cancellation)
    {
        if (_closing)
        {
            throw new ObjectDisposedException(nameof(TransactionalUnitOfWork), $"Produce to '{topic}' stopped waiting for room in the full local queue: the unit of work for '{_transactionalId}' is being disposed. The record was not written.");
        }

        if (cancellation.IsCancellationRequested)
        {
            throw new OperationCanceledException($"Produce to '{topic}' stopped waiting for room in the full local queue: the transaction of '{_transactionalId}' was cancelled. The record was not written.", queueFull, cancellation);
        }
    }

    // ---------------------------------------------------------------- delivery reports

    /// <summary>The records of the current transaction that Kafka refused, as far as their reports have arrived.</summary>
    public List<DeliveryFailure> SnapshotFailures() => _client.Deliveries.SnapshotFailures();

    public void ClearFailures() => _client.Deliveries.ClearFailures();

    /// <summary>
    /// The failed records of the current transaction, once their reports have arrived. librdkafka has finished with
    /// every record when a commit fails, but Confluent.Kafka hands the reports over on its poll thread: they get a
    /// bounded moment to arrive.
    /// </summary>
    public async Task<List<DeliveryFailure>> CollectFailuresAsync()
    {
        var deliveries = _client.Deliveries;
        var started = _time.GetTimestamp();
        while (deliveries.Pending > 0 && _time.GetElapsedTime(started) < DeliveryReportWait)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(5), _time).ConfigureAwait(false);
        }

        return deliveries.SnapshotFailures();
    }

    private void OnClientError(Error error)
    {
        if (Connection.OnError(error))
        {
            return; // a connection failure, logged once per change of state
        }

        if (error.IsFatal)
        {
            Log.ClientFatalError(_logger, _transactionalId, error.Code, error.Reason);
        }
        else
        {
            Log.ClientError(_logger, _transactionalId, error.Code, error.Reason);
        }
    }

    private void OnClientLog(LogMessage message)
    {
        var level = Connection.LevelOf(message);
        if (_logger.IsEnabled(level))
        {
            Log.ClientLog(_logger, level, _transactionalId, message.Facility, message.Message);
        }
    }
}
