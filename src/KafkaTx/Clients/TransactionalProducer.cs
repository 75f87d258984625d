using Confluent.Kafka;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Clients;

/// <summary>
/// The life of the Confluent.Kafka producer behind a unit of work: creating it, replacing it after a fatal error,
/// disposing it, running its blocking calls, and tracking the delivery reports of its records. It knows nothing of
/// transaction states; <see cref="TransactionalUnitOfWork"/> decides when to call what.
/// </summary>
/// <remarks>
/// Each producer gets a <see cref="DeliveryTracker"/> of its own, so that late delivery reports of a replaced
/// producer (its purged records, say) never count against the records of its successor.
/// Blocking librdkafka calls (init, commit, abort, send offsets) run on the thread pool in slices of at most
/// <see cref="MaxBlockingSlice"/>, so that cancellation is honoured between slices; librdkafka resumes a timed-out call.
/// </remarks>
internal sealed class TransactionalProducer : IDisposable
{
    private static readonly TimeSpan MaxBlockingSlice = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RetriableCallBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan DeliveryReportWait = TimeSpan.FromSeconds(5);

    /// <summary>How long past its own timeout a blocking librdkafka call may run before the producer is given up as stuck.</summary>
    private static readonly TimeSpan StuckCallGrace = TimeSpan.FromSeconds(10);

    private readonly KafkaTransactionsOptions _options;
    private readonly IKafkaClientFactory _clientFactory;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly string _transactionalId;
    private readonly Action<Error> _onClientError;
    private readonly Action<LogMessage> _onClientLog;

    private IProducer<byte[]?, byte[]?> _producer;
    private DeliveryTracker _deliveries;

    // A blocking call on the current producer that overran its timeout and still runs: disposing the producer now
    // would block until it returns, so the producer is disposed when (if ever) the call returns.
    private Task? _stuckCall;

    public TransactionalProducer(KafkaTransactionsOptions options, IKafkaClientFactory clientFactory, ILogger logger, TimeProvider time, string transactionalId)
    {
        _options = options;
        _clientFactory = clientFactory;
        _logger = logger;
        _time = time;
        _transactionalId = transactionalId;
        _onClientError = OnClientError;
        _onClientLog = OnClientLog;
        (_producer, _deliveries) = Create();
    }

    /// <summary>How many times the producer has been replaced since this object was created.</summary>
    public int Replacements { get; private set; }

    /// <summary>Records produced whose delivery report has not arrived yet.</summary>
    public int PendingDeliveries => _deliveries.Pending;

    // ---------------------------------------------------------------- lifecycle

    /// <summary>
    /// Disposes the current producer without completing its transaction and creates a new one, which must call
    /// InitTransactions before use: that call aborts (or completes) whatever the old producer left open.
    /// </summary>
    public void Replace()
    {
        Retire(_producer);
        (_producer, _deliveries) = Create();
        Replacements++;
    }

    public void Dispose() => Retire(_producer);

    private void Retire(IProducer<byte[]?, byte[]?> producer)
    {
        if (Interlocked.Exchange(ref _stuckCall, null) is { } stuck)
        {
            _ = stuck.ContinueWith(_ => DisposeQuietly(producer), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            return;
        }

        DisposeQuietly(producer);
    }

    private (IProducer<byte[]?, byte[]?> Producer, DeliveryTracker Deliveries) Create()
    {
        var deliveries = new DeliveryTracker();
        return (_clientFactory.CreateProducer(_options.ToProducerConfig(), _onClientError, _onClientLog), deliveries);
    }

    private void DisposeQuietly(IProducer<byte[]?, byte[]?> producer)
    {
        try
        {
            producer.Dispose();
        }
        catch (Exception e) when (e is KafkaException or ObjectDisposedException or InvalidOperationException)
        {
            // The producer is being discarded; a failure to close it changes nothing for the caller.
            Log.ClientError(_logger, _transactionalId, ErrorCode.Local_Destroy, e.Message);
        }
    }

    // ---------------------------------------------------------------- calls

    public void BeginTransaction()
    {
        _producer.BeginTransaction();
        _deliveries.ClearFailures();
    }

    public Task InitTransactionsAsync(CancellationToken cancellationToken) =>
        RunBlockingAsync("InitTransactions", static (producer, timeout) => producer.InitTransactions(timeout), _options.InitTimeout, cancellationToken);

    public Task CommitTransactionAsync(CancellationToken cancellationToken) =>
        RunBlockingAsync("CommitTransaction", static (producer, timeout) => producer.CommitTransaction(timeout), _options.CommitTimeout, cancellationToken);

    public Task AbortTransactionAsync(CancellationToken cancellationToken) =>
        RunBlockingAsync("AbortTransaction", static (producer, timeout) => producer.AbortTransaction(timeout), _options.AbortTimeout, cancellationToken);

    public Task SendOffsetsAsync(List<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken) =>
        RunBlockingAsync("SendOffsetsToTransaction", (producer, timeout) => producer.SendOffsetsToTransaction(offsets, groupMetadata, timeout), _options.SendOffsetsTimeout, cancellationToken);

    /// <summary>librdkafka's abort is itself a blocking call: for the synchronous Dispose, calling it directly is not sync-over-async.</summary>
    public void AbortTransactionNow() => _producer.AbortTransaction(_options.AbortTimeout);

    /// <summary>
    /// Produces a record, waiting for room while the local queue is full (as the Java producer's max.block.ms does),
    /// but no longer than a record may take to be delivered. The delivery report is tracked.
    /// </summary>
    /// <param name="topic">The topic.</param>
    /// <param name="topicPartition">The partition, or null for the partitioner's choice.</param>
    /// <param name="message">The serialized record.</param>
    /// <param name="track">Whether this record's delivery report is tracked (see <see cref="DeliveryTracking"/>).</param>
    public void Produce(string topic, TopicPartition? topicPartition, Message<byte[]?, byte[]?> message, bool track)
    {
        var deliveries = track ? _deliveries : null;
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
                        _producer.Produce(topic, message, deliveries?.OnDelivery);
                    }
                    else
                    {
                        _producer.Produce(topicPartition, message, deliveries?.OnDelivery);
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

    /// <summary>
    /// Runs a blocking librdkafka call on the thread pool, in slices so that cancellation is honoured between them,
    /// repeating it while it fails with a retriable error and the deadline allows. librdkafka resumes a call that
    /// timed out, so a new slice continues where the last one stopped.
    /// </summary>
    private async Task RunBlockingAsync(string operation, Action<IProducer<byte[]?, byte[]?>, TimeSpan> call, TimeSpan budget, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var producer = _producer;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var remaining = budget - _time.GetElapsedTime(started);
            var slice = remaining < MaxBlockingSlice ? remaining : MaxBlockingSlice;
            if (slice < TimeSpan.FromMilliseconds(1))
            {
                slice = TimeSpan.FromMilliseconds(1);
            }

            var running = Task.Run(() => call(producer, slice), CancellationToken.None);
            try
            {
                await running.WaitAsync(slice + StuckCallGrace, _time, CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (TimeoutException)
            {
                // librdkafka did not honour its own timeout (seen with a group coordinator that went away during
                // SendOffsetsToTransaction). Waiting longer could hang the caller for ever: the producer is given up as
                // broken, which the unit heals by replacing it; its InitTransactions aborts the transaction.
                Log.BlockingCallStuck(_logger, operation, _transactionalId, (long)StuckCallGrace.TotalMilliseconds, (long)slice.TotalMilliseconds);
                if (ReferenceEquals(producer, _producer))
                {
                    _stuckCall = running;
                }

                throw new KafkaException(new Error(ErrorCode.Local_TimedOut, $"{operation} did not return within {StuckCallGrace.TotalSeconds:F0} s after its timeout; the producer was given up as stuck", true));
            }
            catch (KafkaException e) when (TransactionErrorClassifier.Classify(e.Error) == TransactionErrorKind.Retriable)
            {
                if (_time.GetElapsedTime(started) >= budget)
                {
                    throw;
                }

                Log.RetryingCall(_logger, operation, _transactionalId, e.Error.Code);
                if (e.Error.Code != ErrorCode.Local_TimedOut)
                {
                    // Not a slice running out but an answer: pause briefly instead of asking again at once.
                    await Task.Delay(RetriableCallBackoff, _time, cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    // ---------------------------------------------------------------- delivery reports

    /// <summary>The records of the current transaction that Kafka refused, as far as their reports have arrived.</summary>
    public List<DeliveryFailure> SnapshotFailures() => _deliveries.SnapshotFailures();

    public void ClearFailures() => _deliveries.ClearFailures();

    /// <summary>
    /// The failed records of the current transaction, once their reports have arrived. librdkafka has finished with
    /// every record when a commit fails, but Confluent.Kafka hands the reports over on its poll thread: they get a
    /// bounded moment to arrive.
    /// </summary>
    public async Task<List<DeliveryFailure>> CollectFailuresAsync()
    {
        var deliveries = _deliveries;
        var started = _time.GetTimestamp();
        while (deliveries.Pending > 0 && _time.GetElapsedTime(started) < DeliveryReportWait)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(5), _time).ConfigureAwait(false);
        }

        return deliveries.SnapshotFailures();
    }

    private void OnClientError(Error error)
    {
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
        var level = Log.ToLogLevel(message.Level);
        if (_logger.IsEnabled(level))
        {
            Log.ClientLog(_logger, level, _transactionalId, message.Facility, message.Message);
        }
    }

    /// <summary>The delivery reports of one producer's records.</summary>
    /// <remarks>
    /// Records sent and reports received are counted apart, on separate cache lines: the producing threads write one,
    /// Confluent.Kafka's poll thread the other, and a single shared counter would bounce between the two cores on
    /// every record.
    /// </remarks>
    private sealed class DeliveryTracker
    {
        private readonly Lock _lock = new();
        private readonly List<DeliveryFailure> _failures = [];
        private Counters _counters;

        public DeliveryTracker() => OnDelivery = Delivered;

        /// <summary>One delegate per producer, so that producing allocates none.</summary>
        public Action<DeliveryReport<byte[]?, byte[]?>> OnDelivery { get; }

        public int Pending => (int)(Volatile.Read(ref _counters.Sent) - Volatile.Read(ref _counters.Reported));

        public void Sent() => Interlocked.Increment(ref _counters.Sent);

        public void NotSent() => Interlocked.Decrement(ref _counters.Sent);

        public List<DeliveryFailure> SnapshotFailures()
        {
            lock (_lock)
            {
                return [.. _failures];
            }
        }

        public void ClearFailures()
        {
            lock (_lock)
            {
                _failures.Clear();
            }
        }

        private void Delivered(DeliveryReport<byte[]?, byte[]?> report)
        {
            // Purged records belong to a transaction that is being aborted anyway; they are not failures to report.
            var error = report.Error;
            if (error.IsError && error.Code is not (ErrorCode.Local_PurgeQueue or ErrorCode.Local_PurgeInflight))
            {
                lock (_lock)
                {
                    _failures.Add(new DeliveryFailure(report.TopicPartition, error));
                }
            }

            Interlocked.Increment(ref _counters.Reported);
        }

        [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 192)]
        private struct Counters
        {
            [System.Runtime.InteropServices.FieldOffset(64)]
            public long Sent;

            [System.Runtime.InteropServices.FieldOffset(128)]
            public long Reported;
        }
    }
}
