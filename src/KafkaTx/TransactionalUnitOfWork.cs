using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaTx.Retry;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx;

/// <summary>
/// The transactional unit of work over one Confluent.Kafka producer. See <see cref="ITransactionalUnitOfWork"/>
/// for the contract and <c>docs/state-machine.md</c> for the transitions.
/// </summary>
/// <remarks>
/// Concurrency: <see cref="_gate"/> admits one transaction at a time. ExecuteAsync waits for it; the explicit
/// BeginTransaction takes it without waiting (and throws when it is held) and keeps it until the transaction ends.
/// The state is read lock-free on the produce path and changed only by the holder of the gate, except for the
/// terminal states, which any thread may enter.
/// Blocking librdkafka calls (init, commit, abort, send offsets) run on the thread pool in slices of at most
/// <see cref="MaxBlockingSlice"/>, so that cancellation is honoured between slices; librdkafka resumes a timed-out call.
/// </remarks>
internal sealed class TransactionalUnitOfWork : ITransactionalUnitOfWork
{
    private static readonly TimeSpan MaxBlockingSlice = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RetriableCallBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan DeliveryReportWait = TimeSpan.FromSeconds(5);

    private readonly KafkaTransactionsOptions _options;
    private readonly string _name;
    private readonly IKafkaClientFactory _clientFactory;
    private readonly ILogger _logger;
    private readonly KafkaTxInstrumentation _instrumentation;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Action<DeliveryReport<byte[]?, byte[]?>> _onDelivery;
    private readonly Action<Error> _onClientError;
    private readonly Action<LogMessage> _onClientLog;
    private readonly Lock _failuresLock = new();
    private readonly List<DeliveryFailure> _failures = [];
    private readonly KeyValuePair<string, object?> _producerTag;

    private IProducer<byte[]?, byte[]?> _producer;
    private int _state;
    private int _pendingDeliveries;
    private int _recordsInTransaction;
    private long _transactionStartedAt;
    private int _attempt = 1;
    private bool _explicitTransaction;
    private bool _executing;
    private int _disposeStarted;

    public TransactionalUnitOfWork(
        string name,
        KafkaTransactionsOptions options,
        IKafkaClientFactory clientFactory,
        ILogger logger,
        KafkaTxInstrumentation instrumentation,
        TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        _name = name ?? throw new ArgumentNullException(nameof(name));
        _options = options;
        _clientFactory = clientFactory ?? throw new ArgumentNullException(nameof(clientFactory));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _instrumentation = instrumentation ?? throw new ArgumentNullException(nameof(instrumentation));
        _time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        TransactionalId = options.ResolveTransactionalId()
            ?? throw new InvalidOperationException("The options name no transactional id; validate them (AddKafkaTransactions does) before creating a unit of work.");
        _producerTag = new("kafkatx.producer", string.IsNullOrEmpty(name) ? "default" : name);
        _onDelivery = OnDelivery;
        _onClientError = OnClientError;
        _onClientLog = OnClientLog;
        _producer = CreateProducer();
    }

    public string TransactionalId { get; }

    public TransactionState State => (TransactionState)Volatile.Read(ref _state);

    // ---------------------------------------------------------------- initialization

    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfTerminal(nameof(InitializeAsync));
        if (State is not (TransactionState.Uninitialized or TransactionState.Initializing))
        {
            return;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfTerminal(nameof(InitializeAsync));
            if (State == TransactionState.Uninitialized)
            {
                await InitializeCoreAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task InitializeCoreAsync(CancellationToken cancellationToken)
    {
        Log.Initializing(_logger, TransactionalId);
        var started = _time.GetTimestamp();
        TransitionTo(TransactionState.Initializing);
        try
        {
            await RunBlockingAsync("InitTransactions", static (producer, timeout) => producer.InitTransactions(timeout), _options.InitTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            TransitionTo(TransactionState.Uninitialized);
            throw;
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            if (kind == TransactionErrorKind.Retriable)
            {
                TransitionTo(TransactionState.Uninitialized);
                throw Failure(kind, e, $"InitTransactions for transactional.id '{TransactionalId}' did not complete within InitTimeout ({_options.InitTimeout}): the transaction coordinator is unavailable or still aborting an earlier transaction. Call again; librdkafka resumes the initialization.");
            }

            throw EnterTerminalFailure(kind, e, $"InitTransactions for transactional.id '{TransactionalId}' failed");
        }

        TransitionTo(TransactionState.Ready);
        Log.Initialized(_logger, TransactionalId, (long)_time.GetElapsedTime(started).TotalMilliseconds);
    }

    // ---------------------------------------------------------------- explicit transaction control

    public void BeginTransaction()
    {
        ThrowIfTerminal(nameof(BeginTransaction));
        if (!_gate.Wait(0))
        {
            throw new InvalidOperationException(
                $"BeginTransaction is not valid now (state {State}): another transaction of '{TransactionalId}' is open or another call is running. " +
                "A unit of work runs one transaction at a time; use ExecuteAsync to queue concurrent callers, or one unit per concurrent flow (each with its own transactional.id).");
        }

        try
        {
            var state = State;
            if (state != TransactionState.Ready)
            {
                throw InvalidState(nameof(BeginTransaction), state, state == TransactionState.Uninitialized ? "Call InitializeAsync first." : null);
            }

            BeginCore();
            _explicitTransaction = true;
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfOwnedByExecute(nameof(CommitAsync));
        var state = State;
        if (state is not (TransactionState.InTransaction or TransactionState.Committing) || !_explicitTransaction)
        {
            ThrowIfTerminal(nameof(CommitAsync));
            throw InvalidState(nameof(CommitAsync), state, "No transaction is open: call BeginTransaction first.");
        }

        try
        {
            await CommitCoreAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ReleaseExplicitTransactionIfEnded();
        }
    }

    public async Task AbortAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfOwnedByExecute(nameof(AbortAsync));
        var state = State;
        if (state is not (TransactionState.InTransaction or TransactionState.Aborting) || !_explicitTransaction)
        {
            ThrowIfTerminal(nameof(AbortAsync));
            throw InvalidState(nameof(AbortAsync), state, state == TransactionState.Committing
                ? "A commit with an unknown outcome is pending: call CommitAsync to resume it, or ResetAsync."
                : "No transaction is open.");
        }

        try
        {
            await AbortCoreAsync("aborted by the caller", cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ReleaseExplicitTransactionIfEnded();
        }
    }

    // ---------------------------------------------------------------- produce (the hot path)

    public void Produce<TKey, TValue>(string topic, Message<TKey, TValue> message)
    {
        if (string.IsNullOrEmpty(topic))
        {
            throw new ArgumentException("The topic is null or empty; name the topic to write to.", nameof(topic));
        }

        ProduceCore(topic, null, message);
    }

    public void Produce<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message)
    {
        ArgumentNullException.ThrowIfNull(topicPartition);
        if (string.IsNullOrEmpty(topicPartition.Topic))
        {
            throw new ArgumentException("The topic is null or empty; name the topic to write to.", nameof(topicPartition));
        }

        ProduceCore(topicPartition.Topic, topicPartition, message);
    }

    private void ProduceCore<TKey, TValue>(string topic, TopicPartition? topicPartition, Message<TKey, TValue> message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var state = State;
        if (state != TransactionState.InTransaction)
        {
            ThrowIfTerminal(nameof(Produce));
            throw InvalidState(nameof(Produce), state, "Records can only be written inside a transaction: call BeginTransaction, or use ExecuteAsync.");
        }

        var serializers = _options.Serializers;
        var key = serializers.Serialize(message.Key, new SerializationContext(MessageComponentType.Key, topic, message.Headers));
        var value = serializers.Serialize(message.Value, new SerializationContext(MessageComponentType.Value, topic, message.Headers));

        // The byte-level message is rented, not allocated: Confluent.Kafka reads it during Produce and keeps no
        // reference to it, so the hot path allocates nothing beyond what Confluent.Kafka itself allocates.
        var raw = ScratchMessage.Rent(key, value, message.Headers, message.Timestamp);
        Interlocked.Increment(ref _pendingDeliveries);
        try
        {
            ProduceWithBackpressure(topic, topicPartition, raw);
            Interlocked.Increment(ref _recordsInTransaction);
        }
        catch (ProduceException<byte[]?, byte[]?> e)
        {
            Interlocked.Decrement(ref _pendingDeliveries);
            throw ProduceFailure(topic, e);
        }
        catch
        {
            Interlocked.Decrement(ref _pendingDeliveries);
            throw;
        }
        finally
        {
            ScratchMessage.Return(raw);
        }
    }

    private void ProduceWithBackpressure(string topic, TopicPartition? topicPartition, Message<byte[]?, byte[]?> raw)
    {
        long deadline = 0;
        while (true)
        {
            try
            {
                if (topicPartition is null)
                {
                    _producer.Produce(topic, raw, _onDelivery);
                }
                else
                {
                    _producer.Produce(topicPartition, raw, _onDelivery);
                }

                return;
            }
            catch (ProduceException<byte[]?, byte[]?> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                // The local queue is full: wait for deliveries to drain it, as the Java producer's max.block.ms does,
                // but no longer than a record may take to be delivered.
                if (deadline == 0)
                {
                    deadline = _time.GetTimestamp();
                    Log.WaitingForQueueRoom(_logger, TransactionalId);
                }
                else if (_time.GetElapsedTime(deadline) >= _options.DeliveryTimeout)
                {
                    throw;
                }

                Thread.Sleep(1);
            }
        }
    }

    private KafkaTransactionException ProduceFailure(string topic, ProduceException<byte[]?, byte[]?> e)
    {
        var kind = TransactionErrorClassifier.Classify(e.Error);
        if (kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal)
        {
            return EnterTerminalFailure(kind, e, $"Produce to '{topic}' failed");
        }

        return Failure(kind, e, $"Produce to '{topic}' in the transaction of '{TransactionalId}' was refused by the client: {e.Error.Code} ({e.Error.Reason}). " + Advice(kind));
    }

    private void OnDelivery(DeliveryReport<byte[]?, byte[]?> report)
    {
        // Purged records belong to a transaction that is being aborted anyway; they are not failures to report.
        var error = report.Error;
        if (error.IsError && error.Code is not (ErrorCode.Local_PurgeQueue or ErrorCode.Local_PurgeInflight))
        {
            lock (_failuresLock)
            {
                _failures.Add(new DeliveryFailure(report.TopicPartition, error));
            }
        }

        Interlocked.Decrement(ref _pendingDeliveries);
    }

    // ---------------------------------------------------------------- offsets

    public async Task SendOffsetsAsync(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(offsets);
        ArgumentNullException.ThrowIfNull(groupMetadata);
        var list = offsets.ToList();
        if (list.Count == 0)
        {
            throw new ArgumentException("No offsets were given; pass the consumer's positions for the partitions whose records this transaction processed.", nameof(offsets));
        }

        foreach (var offset in list)
        {
            if (offset is null || string.IsNullOrEmpty(offset.Topic) || offset.Offset.Value < 0)
            {
                throw new ArgumentException($"Offset '{offset}' is not a valid position: each needs a topic and a non-negative offset (the next record to read, as the consumer's Position returns).", nameof(offsets));
            }
        }

        var state = State;
        if (state != TransactionState.InTransaction)
        {
            ThrowIfTerminal(nameof(SendOffsetsAsync));
            throw InvalidState(nameof(SendOffsetsAsync), state, "Offsets can only be sent inside a transaction.");
        }

        ThrowIfExpired(nameof(SendOffsetsAsync));
        try
        {
            await RunBlockingAsync("SendOffsetsToTransaction", (producer, timeout) => producer.SendOffsetsToTransaction(list, groupMetadata, timeout), _options.SendOffsetsTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            if (kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal)
            {
                throw EnterTerminalFailure(kind, e, "SendOffsetsToTransaction failed");
            }

            // The transaction is still open but may not commit: the caller (or ExecuteAsync) aborts it.
            throw Failure(kind == TransactionErrorKind.Retriable ? TransactionErrorKind.Abortable : kind, e,
                $"SendOffsetsToTransaction for {list.Count} partition(s) in the transaction of '{TransactionalId}' failed: {e.Error.Code} ({e.Error.Reason}). Abort the transaction; the consumer must rewind to its committed offsets.");
        }
    }

    // ---------------------------------------------------------------- ExecuteAsync

    public Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return ExecuteAsync<bool>(
            async (scope, ct) =>
            {
                await work(scope, ct).ConfigureAwait(false);
                return true;
            },
            cancellationToken);
    }

    public async Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        ThrowIfTerminal(nameof(ExecuteAsync));
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        _executing = true;
        using var activity = _instrumentation.ActivitySource.StartActivity("kafkatx.transaction", ActivityKind.Producer);
        activity?.SetTag("messaging.system", "kafka");
        activity?.SetTag("kafkatx.transactional_id", TransactionalId);
        try
        {
            await PrepareForTransactionAsync(cancellationToken).ConfigureAwait(false);
            var maxAttempts = _options.Retry.MaxAttempts;
            for (var attempt = 1; ; attempt++)
            {
                _attempt = attempt;
                cancellationToken.ThrowIfCancellationRequested();
                BeginCore();
                TResult result;
                try
                {
                    result = await work(this, cancellationToken).ConfigureAwait(false);
                    cancellationToken.ThrowIfCancellationRequested();
                }
                catch (Exception failure)
                {
                    var kind = await AbortAfterWorkFailureAsync(failure, cancellationToken).ConfigureAwait(false);
                    if (CanRunAgain(kind, attempt, maxAttempts, cancellationToken))
                    {
                        await DelayBeforeRetryAsync(kind, attempt + 1, maxAttempts, failure, cancellationToken).ConfigureAwait(false);
                        continue;
                    }

                    activity?.SetStatus(ActivityStatusCode.Error, failure.Message);
                    ExceptionDispatchInfo.Capture(failure).Throw();
                    throw; // unreachable: Throw() always throws
                }

                try
                {
                    await CommitCoreAsync(cancellationToken).ConfigureAwait(false);
                    activity?.SetTag("kafkatx.attempts", attempt);
                    return result;
                }
                catch (KafkaTransactionException e) when (CanRunAgain(e.Kind, attempt, maxAttempts, cancellationToken))
                {
                    // The commit failed and the transaction was aborted: run the work again.
                    await DelayBeforeRetryAsync(e.Kind, attempt + 1, maxAttempts, e, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    activity?.SetStatus(ActivityStatusCode.Error, e.Message);
                    throw;
                }
            }
        }
        finally
        {
            _attempt = 1;
            _executing = false;
            _gate.Release();
        }
    }

    /// <summary>Makes the unit ready for a new transaction: initializes it, or finishes an abort that timed out earlier.</summary>
    private async Task PrepareForTransactionAsync(CancellationToken cancellationToken)
    {
        switch (State)
        {
            case TransactionState.Uninitialized:
                await InitializeCoreAsync(cancellationToken).ConfigureAwait(false);
                break;
            case TransactionState.Aborting:
                await AbortCoreAsync("resuming an abort that did not complete earlier", cancellationToken).ConfigureAwait(false);
                break;
            case TransactionState.Ready:
                break;
            case var state:
                ThrowIfTerminal(nameof(ExecuteAsync));
                throw InvalidState(nameof(ExecuteAsync), state, state == TransactionState.Committing
                    ? "An earlier commit has an unknown outcome: call CommitAsync to resume it and learn the outcome, or ResetAsync to replace the producer."
                    : null);
        }
    }

    /// <summary>Aborts after the work failed, and returns the failure's kind (null for an application exception).</summary>
    private async Task<TransactionErrorKind?> AbortAfterWorkFailureAsync(Exception failure, CancellationToken cancellationToken)
    {
        var kind = failure is OperationCanceledException ? null : TransactionErrorClassifier.Classify(failure);
        if (kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal)
        {
            if (failure is KafkaTransactionException)
            {
                return kind; // already handled where it was raised
            }

            throw EnterTerminalFailure(kind.Value, (KafkaException)failure, "The transactional work failed");
        }

        if (State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            try
            {
                // Abort even when cancelled: an open transaction holds back every read_committed consumer.
                await AbortCoreAsync(DescribeAbortReason(failure, cancellationToken), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception abortFailure) when (abortFailure is KafkaException or OperationCanceledException)
            {
                Log.CleanupAbortFailed(_logger, TransactionalId, failure);
                throw;
            }
        }

        return kind;
    }

    private static bool CanRunAgain(TransactionErrorKind? kind, int attempt, int maxAttempts, CancellationToken cancellationToken) =>
        kind is TransactionErrorKind.Abortable or TransactionErrorKind.Retriable
        && attempt < maxAttempts
        && !cancellationToken.IsCancellationRequested;

    private async Task DelayBeforeRetryAsync(TransactionErrorKind? kind, int nextAttempt, int maxAttempts, Exception failure, CancellationToken cancellationToken)
    {
        var delay = RetryBackoff.DelayBefore(_options.Retry, nextAttempt, Random.Shared.NextDouble());
        Log.RetryingWork(_logger, TransactionalId, kind, nextAttempt, maxAttempts, (long)delay.TotalMilliseconds, failure);
        _instrumentation.WorkRetries.Add(1, _producerTag);
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- commit and abort

    private void BeginCore()
    {
        try
        {
            _producer.BeginTransaction();
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            throw kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal
                ? EnterTerminalFailure(kind, e, "BeginTransaction failed")
                : Failure(kind, e, $"BeginTransaction for '{TransactionalId}' failed: {e.Error.Code} ({e.Error.Reason}).");
        }

        ClearFailures();
        Volatile.Write(ref _recordsInTransaction, 0);
        _transactionStartedAt = _time.GetTimestamp();
        TransitionTo(TransactionState.InTransaction);
    }

    private async Task CommitCoreAsync(CancellationToken cancellationToken)
    {
        var commitStarted = _time.GetTimestamp();
        if (State == TransactionState.InTransaction)
        {
            var age = _time.GetElapsedTime(_transactionStartedAt);
            if (age >= _options.TransactionTimeout)
            {
                Log.TransactionExpired(_logger, TransactionalId, (long)age.TotalMilliseconds, (long)_options.TransactionTimeout.TotalMilliseconds);
                await AbortCoreAsync("older than transaction.timeout.ms", CancellationToken.None).ConfigureAwait(false);
                throw Failure(TransactionErrorKind.Abortable, new Error(ErrorCode.Local_TimedOut, "transaction older than transaction.timeout.ms"), null,
                    $"The transaction of '{TransactionalId}' was open for {age.TotalMilliseconds:F0} ms, not below TransactionTimeout (transaction.timeout.ms = {_options.TransactionTimeout.TotalMilliseconds:F0} ms). The broker aborts such transactions, so it was aborted instead of committed and nothing in it is visible. Make the work shorter (fewer records per transaction) or raise TransactionTimeout.");
            }

            var early = SnapshotFailures();
            if (early.Count > 0)
            {
                var error = early[0].Error;
                await AbortCoreAsync("a record was not delivered", CancellationToken.None).ConfigureAwait(false);
                throw DeliveryFailed(KindOf(early), error, null, early);
            }

            // Cancellation is honoured up to here: nothing has been sent, and the transaction stays open.
            cancellationToken.ThrowIfCancellationRequested();
            TransitionTo(TransactionState.Committing);
        }

        var records = Volatile.Read(ref _recordsInTransaction);
        try
        {
            await RunBlockingAsync("CommitTransaction", static (producer, timeout) => producer.CommitTransaction(timeout), _options.CommitTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException e)
        {
            Log.CommitOutcomeUnknown(_logger, TransactionalId, e);
            throw;
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            switch (kind)
            {
                case TransactionErrorKind.Retriable:
                    Log.CommitOutcomeUnknown(_logger, TransactionalId, e);
                    throw Failure(TransactionErrorKind.OutcomeUnknown, e,
                        $"The commit of '{TransactionalId}' did not complete within CommitTimeout ({_options.CommitTimeout}); last error {e.Error.Code} ({e.Error.Reason}). Its outcome is unknown and it is not treated as committed. Call CommitAsync again to resume it and learn the outcome, or ResetAsync: the new producer's InitTransactions completes or aborts it.");
                case TransactionErrorKind.Fenced or TransactionErrorKind.Fatal:
                    throw EnterTerminalFailure(kind, e, "CommitTransaction failed");
                default:
                    var failures = await CollectFailuresAsync().ConfigureAwait(false);
                    await AbortCoreAsync($"the commit failed with {e.Error.Code}", CancellationToken.None).ConfigureAwait(false);
                    throw DeliveryFailed(failures.Count > 0 ? Worst(kind, KindOf(failures)) : kind, e.Error, e, failures);
            }
        }

        TransitionTo(TransactionState.Ready);
        var elapsed = _time.GetElapsedTime(commitStarted);
        _instrumentation.Commits.Add(1, _producerTag);
        _instrumentation.RecordsCommitted.Add(records, _producerTag);
        _instrumentation.CommitDuration.Record(elapsed.TotalSeconds, _producerTag);
        Log.Committed(_logger, TransactionalId, records, (long)elapsed.TotalMilliseconds);
    }

    private async Task AbortCoreAsync(string reason, CancellationToken cancellationToken)
    {
        TransitionTo(TransactionState.Aborting);
        try
        {
            await RunBlockingAsync("AbortTransaction", static (producer, timeout) => producer.AbortTransaction(timeout), _options.AbortTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            if (kind == TransactionErrorKind.Retriable)
            {
                throw Failure(kind, e, $"Aborting the transaction of '{TransactionalId}' did not complete within AbortTimeout ({_options.AbortTimeout}): {e.Error.Code} ({e.Error.Reason}). Nothing in it is visible. Call AbortAsync again (ExecuteAsync does so before its next transaction), or dispose: the broker aborts it after transaction.timeout.ms, and a new producer with this transactional.id aborts it at once.");
            }

            throw EnterTerminalFailure(kind == TransactionErrorKind.Fenced ? kind : TransactionErrorKind.Fatal, e, "AbortTransaction failed");
        }

        ClearFailures();
        TransitionTo(TransactionState.Ready);
        _instrumentation.Aborts.Add(1, _producerTag);
        Log.Aborted(_logger, TransactionalId, reason);
    }

    // ---------------------------------------------------------------- reset and dispose

    public async Task ResetAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfTerminal(nameof(ResetAsync));
        var ownsGate = _explicitTransaction;
        if (!ownsGate)
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            ThrowIfTerminal(nameof(ResetAsync));
            var state = State;
            if (state == TransactionState.InTransaction)
            {
                throw InvalidState(nameof(ResetAsync), state, "A transaction is open and the producer is healthy: abort it instead.");
            }

            Log.Resetting(_logger, TransactionalId, state);
            DisposeProducerQuietly();
            _producer = CreateProducer();
            Volatile.Write(ref _pendingDeliveries, 0);
            ClearFailures();
            Volatile.Write(ref _state, (int)TransactionState.Uninitialized);
            _explicitTransaction = false;
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) == 1)
        {
            return;
        }

        var ownsGate = _explicitTransaction || await _gate.WaitAsync(_options.AbortTimeout).ConfigureAwait(false);
        try
        {
            if (State is TransactionState.InTransaction or TransactionState.Aborting)
            {
                Log.DisposingOpenTransaction(_logger, TransactionalId);
                try
                {
                    await AbortCoreAsync("the unit of work was disposed", CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is KafkaException or OperationCanceledException)
                {
                    Log.DisposeAbortFailed(_logger, TransactionalId, e);
                }
            }
        }
        finally
        {
            FinishDispose(ownsGate);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) == 1)
        {
            return;
        }

        var ownsGate = _explicitTransaction || _gate.Wait(_options.AbortTimeout);
        try
        {
            if (State is TransactionState.InTransaction or TransactionState.Aborting)
            {
                Log.DisposingOpenTransaction(_logger, TransactionalId);
                try
                {
                    // librdkafka's abort is itself a blocking call: calling it directly is not sync-over-async.
                    _producer.AbortTransaction(_options.AbortTimeout);
                }
                catch (KafkaException e)
                {
                    Log.DisposeAbortFailed(_logger, TransactionalId, e);
                }
            }
        }
        finally
        {
            FinishDispose(ownsGate);
        }
    }

    private void FinishDispose(bool ownsGate)
    {
        Volatile.Write(ref _state, (int)TransactionState.Disposed);
        DisposeProducerQuietly();
        _explicitTransaction = false;
        if (ownsGate)
        {
            // Wake queued callers: they find the unit disposed and throw.
            _gate.Release();
        }
    }

    // ---------------------------------------------------------------- helpers

    private IProducer<byte[]?, byte[]?> CreateProducer() =>
        _clientFactory.CreateProducer(_options.ToProducerConfig(), _onClientError, _onClientLog);

    private void DisposeProducerQuietly()
    {
        try
        {
            _producer.Dispose();
        }
        catch (Exception e) when (e is KafkaException or ObjectDisposedException or InvalidOperationException)
        {
            // The producer is being discarded; a failure to close it changes nothing for the caller.
            Log.ClientError(_logger, TransactionalId, ErrorCode.Local_Destroy, e.Message);
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

            try
            {
                await Task.Run(() => call(producer, slice), CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (KafkaException e) when (TransactionErrorClassifier.Classify(e.Error) == TransactionErrorKind.Retriable)
            {
                if (_time.GetElapsedTime(started) >= budget)
                {
                    throw;
                }

                Log.RetryingCall(_logger, operation, TransactionalId, e.Error.Code);
                if (e.Error.Code != ErrorCode.Local_TimedOut)
                {
                    // Not a slice running out but an answer: pause briefly instead of asking again at once.
                    await Task.Delay(RetriableCallBackoff, _time, cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    private void ThrowIfExpired(string operation)
    {
        var age = _time.GetElapsedTime(_transactionStartedAt);
        if (age >= _options.TransactionTimeout)
        {
            throw Failure(TransactionErrorKind.Abortable, new Error(ErrorCode.Local_TimedOut, "transaction older than transaction.timeout.ms"), null,
                $"{operation}: the transaction of '{TransactionalId}' has been open for {age.TotalMilliseconds:F0} ms, not below TransactionTimeout ({_options.TransactionTimeout.TotalMilliseconds:F0} ms); the broker aborts it. Abort it and start again with less work per transaction.");
        }
    }

    private async Task<IReadOnlyList<DeliveryFailure>> CollectFailuresAsync()
    {
        // librdkafka has finished with every record when the commit fails, but the delivery reports are handed to
        // the application on Confluent.Kafka's poll thread: give them a bounded moment to arrive.
        var started = _time.GetTimestamp();
        while (Volatile.Read(ref _pendingDeliveries) > 0 && _time.GetElapsedTime(started) < DeliveryReportWait)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(5), _time).ConfigureAwait(false);
        }

        return SnapshotFailures();
    }

    private List<DeliveryFailure> SnapshotFailures()
    {
        lock (_failuresLock)
        {
            return [.. _failures];
        }
    }

    private void ClearFailures()
    {
        lock (_failuresLock)
        {
            _failures.Clear();
        }
    }

    private static TransactionErrorKind KindOf(IReadOnlyList<DeliveryFailure> failures)
    {
        var kind = TransactionErrorKind.Abortable;
        foreach (var failure in failures)
        {
            kind = Worst(kind, TransactionErrorClassifier.Classify(failure.Error));
        }

        return kind;
    }

    /// <summary>The kind whose reaction is the more drastic: fencing beats a fatal error, which beats a rejection, and so on.</summary>
    private static TransactionErrorKind Worst(TransactionErrorKind a, TransactionErrorKind b) => Severity(a) >= Severity(b) ? a : b;

    private static int Severity(TransactionErrorKind kind) => kind switch
    {
        TransactionErrorKind.Fenced => 5,
        TransactionErrorKind.Fatal => 4,
        TransactionErrorKind.OutcomeUnknown => 3,
        TransactionErrorKind.Rejected => 2,
        TransactionErrorKind.Abortable => 1,
        _ => 0,
    };

    private KafkaTransactionException DeliveryFailed(TransactionErrorKind kind, Error error, Exception? inner, IReadOnlyList<DeliveryFailure> failures)
    {
        if (kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal)
        {
            // A record failed because the producer itself is finished (e.g. fenced by a newer epoch).
            var terminal = EnterTerminalFailure(kind, inner as KafkaException ?? new KafkaException(error), "A record of the transaction failed");
            return new KafkaTransactionException(kind, terminal.Error, terminal.Message, State, inner) { FailedDeliveries = failures, TransactionalId = TransactionalId, Attempts = _attempt };
        }

        var where = failures.Count == 0
            ? "no delivery report named a record"
            : string.Join("; ", failures.GroupBy(f => f.TopicPartition).Select(g => $"{g.Key} ({g.Count()} record(s): {g.First().Error.Code}, {g.First().Error.Reason})"));
        var message = $"The transaction of '{TransactionalId}' could not commit and was aborted; nothing in it is visible. Failed: {where}. Cause: {error.Code} ({error.Reason}). " + Advice(kind);
        return new KafkaTransactionException(kind, failures.Count > 0 ? failures[0].Error : error, message, State, inner)
        {
            FailedDeliveries = failures,
            TransactionalId = TransactionalId,
            Attempts = _attempt,
        };
    }

    private static string Advice(TransactionErrorKind kind) => kind switch
    {
        TransactionErrorKind.Rejected => "Retrying will not help: fix the record (size, topic name) or the permissions.",
        TransactionErrorKind.Abortable => "The work may run again in a new transaction.",
        TransactionErrorKind.Retriable => "The same call may be made again.",
        _ => string.Empty,
    };

    private KafkaTransactionException Failure(TransactionErrorKind kind, KafkaException cause, string message) =>
        Failure(kind, cause.Error, cause, message);

    private KafkaTransactionException Failure(TransactionErrorKind kind, Error error, Exception? inner, string message)
    {
        _instrumentation.Failures.Add(1, _producerTag, new KeyValuePair<string, object?>("kafkatx.error.kind", kind.ToString()));
        return new KafkaTransactionException(kind, error, message, State, inner) { TransactionalId = TransactionalId, Attempts = _attempt };
    }

    /// <summary>Moves to Fenced (disposing the producer) or Faulted, logs, and returns the exception to throw.</summary>
    private KafkaTransactionException EnterTerminalFailure(TransactionErrorKind kind, KafkaException cause, string what)
    {
        if (cause is KafkaTransactionException existing && existing.Kind == kind && State is TransactionState.Fenced or TransactionState.Faulted)
        {
            return existing;
        }

        if (kind == TransactionErrorKind.Fenced)
        {
            TransitionTo(TransactionState.Fenced);
            Log.Fenced(_logger, TransactionalId, cause);
            DisposeProducerQuietly();
            return Failure(kind, cause,
                $"{what}: producer '{TransactionalId}' was fenced by a newer instance with the same transactional.id ({cause.Error.Code}: {cause.Error.Reason}). This instance is a zombie and has stopped; its open transaction is aborted by the coordinator. Never retry. If this was not a restart of this instance, two instances share one transactional.id: give each a unique, stable InstanceId (docs/transactional-id.md).");
        }

        TransitionTo(TransactionState.Faulted);
        Log.Faulted(_logger, TransactionalId, cause);
        var hint = cause.Error.Code == ErrorCode.TransactionalIdAuthorizationFailed
            ? " The principal lacks Write and Describe on the TransactionalId resource: fix the ACLs, then ResetAsync."
            : " Call ResetAsync (or create a new unit): the new producer's InitTransactions aborts the pending transaction, and the work can run again.";
        return Failure(TransactionErrorKind.Fatal, cause, $"{what}: producer '{TransactionalId}' hit a fatal error {cause.Error.Code} ({cause.Error.Reason}) and can no longer be used.{hint}");
    }

    private void TransitionTo(TransactionState next)
    {
        while (true)
        {
            var current = Volatile.Read(ref _state);
            if (current is (int)TransactionState.Fenced or (int)TransactionState.Disposed)
            {
                return; // terminal states are never left
            }

            if (Interlocked.CompareExchange(ref _state, (int)next, current) == current)
            {
                if (current != (int)next)
                {
                    Log.StateChanged(_logger, TransactionalId, (TransactionState)current, next);
                }

                return;
            }
        }
    }

    private void ReleaseExplicitTransactionIfEnded()
    {
        if (_explicitTransaction && State is not (TransactionState.InTransaction or TransactionState.Committing or TransactionState.Aborting))
        {
            _explicitTransaction = false;
            _gate.Release();
        }
    }

    private void ThrowIfOwnedByExecute(string operation)
    {
        if (_executing && !_explicitTransaction)
        {
            throw new InvalidOperationException(
                $"{operation} is not valid inside ExecuteAsync (state {State}): ExecuteAsync commits or aborts its own transaction. Return from the work to commit, or throw to abort.");
        }
    }

    private void ThrowIfTerminal(string operation)
    {
        switch (State)
        {
            case TransactionState.Disposed:
                throw new ObjectDisposedException(nameof(TransactionalUnitOfWork), $"{operation} is not valid in state Disposed: the unit of work for '{TransactionalId}' has been disposed.");
            case TransactionState.Fenced:
                throw new InvalidOperationException($"{operation} is not valid in state Fenced: producer '{TransactionalId}' was fenced by a newer instance with the same transactional.id and must stop. Nothing can be sent from this instance.");
            case TransactionState.Faulted when operation != nameof(ResetAsync):
                throw new InvalidOperationException($"{operation} is not valid in state Faulted: producer '{TransactionalId}' hit a fatal error. Call ResetAsync to replace the producer.");
        }
    }

    private InvalidOperationException InvalidState(string operation, TransactionState state, string? hint) =>
        new($"{operation} is not valid in state {state} (transactional.id '{TransactionalId}').{(hint is null ? string.Empty : " " + hint)}");

    private static string DescribeAbortReason(Exception failure, CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? "cancelled" : $"the work failed with {failure.GetType().Name}";

    private void OnClientError(Error error)
    {
        if (error.IsFatal)
        {
            Log.ClientFatalError(_logger, TransactionalId, error.Code, error.Reason);
        }
        else
        {
            Log.ClientError(_logger, TransactionalId, error.Code, error.Reason);
        }
    }

    private void OnClientLog(LogMessage message)
    {
        var level = Log.ToLogLevel(message.Level);
        if (_logger.IsEnabled(level))
        {
            Log.ClientLog(_logger, level, TransactionalId, message.Facility, message.Message);
        }
    }
}
