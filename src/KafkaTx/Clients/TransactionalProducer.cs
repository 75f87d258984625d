using Confluent.Kafka;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Clients;

/// <summary>
/// The life of the Confluent.Kafka producer behind a unit of work: creating it, replacing it after a fatal error,
/// disposing it, running its blocking calls, and tracking the delivery reports of its records. It knows nothing of
/// transaction states; <see cref="TransactionalUnitOfWork"/> decides when to call what.
/// </summary>
/// <remarks>
/// <para>Each producer gets a <see cref="DeliveryTracker"/> of its own, so that late delivery reports of a replaced
/// producer (its purged records, say) never count against the records of its successor.</para>
/// <para>Blocking librdkafka calls (init, commit, abort, send offsets) run on the thread pool in slices of at most
/// <see cref="MaxBlockingSlice"/>, so that cancellation is honoured between slices; librdkafka resumes a timed-out call.</para>
/// <para>One call at a time per librdkafka handle, and never a disposal under a running call: each handle knows the
/// blocking call running on it (<see cref="Client"/>). A second call is refused, and a handle retired (replaced or
/// disposed) while a call runs is disposed when that call returns, if it ever does.</para>
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

    // The current producer with its delivery reports and its running call. Replaced, never changed in place.
    private Client _client;

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
        _client = Create();
    }

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
    public void Dispose() => _client.Retire();

    /// <summary>The unit of work is being disposed: a Produce waiting for room in the local queue stops waiting.</summary>
    public void StopWaiting() => _closing = true;

    private Client Create() =>
        new(_clientFactory.CreateProducer(_options.ToProducerConfig(), _onClientError, _onClientLog), this);

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

    public Task InitTransactionsAsync(CancellationToken cancellationToken) =>
        RunBlockingAsync("InitTransactions", static (producer, timeout) => producer.InitTransactions(timeout), _options.InitTimeout, cancellationToken);

    public Task CommitTransactionAsync(CancellationToken cancellationToken) =>
        RunBlockingAsync("CommitTransaction", static (producer, timeout) => producer.CommitTransaction(timeout), _options.CommitTimeout, cancellationToken);

    public Task AbortTransactionAsync(CancellationToken cancellationToken) =>
        RunBlockingAsync("AbortTransaction", static (producer, timeout) => producer.AbortTransaction(timeout), _options.AbortTimeout, cancellationToken);

    public Task SendOffsetsAsync(List<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken) =>
        RunBlockingAsync("SendOffsetsToTransaction", (producer, timeout) => producer.SendOffsetsToTransaction(offsets, groupMetadata, timeout), _options.SendOffsetsTimeout, cancellationToken);

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

    /// <summary>
    /// Runs a blocking librdkafka call on the thread pool, in slices so that cancellation is honoured between them,
    /// repeating it while it fails with a retriable error and the deadline allows. librdkafka resumes a call that
    /// timed out, so a new slice continues where the last one stopped. The producer it runs on is busy meanwhile.
    /// </summary>
    private async Task RunBlockingAsync(string operation, Action<IProducer<byte[]?, byte[]?>, TimeSpan> call, TimeSpan budget, CancellationToken cancellationToken)
    {
        var client = _client;
        client.Enter(operation);
        var stillRunning = false;
        try
        {
            var started = _time.GetTimestamp();
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var remaining = budget - _time.GetElapsedTime(started);
                var slice = remaining < MaxBlockingSlice ? remaining : MaxBlockingSlice;
                if (slice < TimeSpan.FromMilliseconds(1))
                {
                    slice = TimeSpan.FromMilliseconds(1);
                }

                var running = Task.Run(() => call(client.Producer, slice), CancellationToken.None);
                try
                {
                    await running.WaitAsync(slice + StuckCallGrace, _time, CancellationToken.None).ConfigureAwait(false);
                    return;
                }
                catch (TimeoutException)
                {
                    // librdkafka did not honour its own timeout (seen with a group coordinator that went away during
                    // SendOffsetsToTransaction). Waiting longer could hang the caller for ever: the producer is given up as
                    // broken, which the unit heals by replacing it; its InitTransactions aborts the transaction. The call
                    // keeps the producer busy until it returns, so the producer is disposed then, if ever.
                    Log.BlockingCallStuck(_logger, operation, _transactionalId, (long)StuckCallGrace.TotalMilliseconds, (long)slice.TotalMilliseconds);
                    stillRunning = true;
                    _ = running.ContinueWith(
                        static (stuck, state) =>
                        {
                            _ = stuck.Exception; // observed: nobody waits for it any more
                            ((Client)state!).Exit();
                        },
                        client,
                        CancellationToken.None,
                        TaskContinuationOptions.None,
                        TaskScheduler.Default);
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
        finally
        {
            if (!stillRunning)
            {
                client.Exit();
            }
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

    /// <summary>
    /// One Confluent.Kafka producer (one librdkafka handle), its delivery reports, and the blocking call running on it:
    /// at most one at a time, and the handle is disposed only when none runs.
    /// </summary>
    private sealed class Client(IProducer<byte[]?, byte[]?> producer, TransactionalProducer owner)
    {
        private readonly Lock _lock = new();
        private string? _running;
        private bool _retired;
        private bool _disposed;

        public IProducer<byte[]?, byte[]?> Producer { get; } = producer;

        public DeliveryTracker Deliveries { get; } = new();

        /// <summary>Marks a call as running on this handle; refuses it when another runs or the handle was retired.</summary>
        public void Enter(string operation)
        {
            lock (_lock)
            {
                if (_retired)
                {
                    throw new ObjectDisposedException(nameof(TransactionalUnitOfWork), $"{operation} was not started: the producer of '{owner._transactionalId}' was disposed (the unit of work was disposed, or its producer replaced) while the call that needed it was running.");
                }

                if (_running is { } other)
                {
                    throw new InvalidOperationException($"{operation} was not started: {other} is still running on the producer of '{owner._transactionalId}', and a librdkafka handle must not serve two transactional calls at once.");
                }

                _running = operation;
            }
        }

        /// <summary>The running call returned: the handle is free, and disposed now if it was retired meanwhile.</summary>
        public void Exit()
        {
            bool dispose;
            lock (_lock)
            {
                _running = null;
                dispose = _retired && !_disposed;
                _disposed |= dispose;
            }

            if (dispose)
            {
                owner.DisposeQuietly(Producer);
            }
        }

        /// <summary>No call may start on this handle any more: it is disposed now, or when the running call returns.</summary>
        public void Retire()
        {
            bool dispose;
            lock (_lock)
            {
                if (_retired)
                {
                    return;
                }

                _retired = true;
                dispose = _running is null;
                _disposed = dispose;
            }

            if (dispose)
            {
                owner.DisposeQuietly(Producer);
            }
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
