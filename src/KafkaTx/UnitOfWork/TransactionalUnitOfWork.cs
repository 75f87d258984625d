using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaTx.Clients;
using KafkaTx.Retry;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;
using KafkaTx.Serialization;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// The transactional unit of work: the state machine over one <see cref="TransactionalProducer"/>. See
/// <see cref="ITransactionalUnitOfWork"/> for the contract and <c>docs/state-machine.md</c> for the transitions.
/// </summary>
/// <remarks>
/// <para>Concurrency: <see cref="_gate"/> admits one transaction at a time. ExecuteAsync waits for it; the explicit
/// BeginTransaction takes it without waiting (and throws when it is held) and keeps it until the transaction ends
/// (committed, aborted, or a commit whose outcome is unknown: that one is settled by the next call, not its owner).
/// The state is read lock-free on the produce path and changed only by the holder of the gate, except for the
/// terminal states, which any thread may enter.</para>
/// <para>Calls in flight: every public call but Produce counts itself in <see cref="_callsInFlight"/> while it runs,
/// and the explicit calls of one transaction run one at a time (<see cref="_explicitCall"/>). Dispose refuses new calls
/// at once, then waits (bounded) for the calls in flight, so that it never aborts or disposes the producer under one.</para>
/// <para>Self-healing: a fatal error that is not fencing does not end the unit. The producer is replaced (a new one,
/// whose InitTransactions aborts whatever the old one left open), at most
/// <see cref="KafkaTransactionsOptions.MaxProducerReplacements"/> times in a row. Where the error hit decides what the
/// caller sees: before the commit, the transaction failed (Abortable: the work may run again); during an abort,
/// nothing (the abort's cause is reported); during the commit, OutcomeUnknown.</para>
/// </remarks>
internal sealed partial class TransactionalUnitOfWork : ITransactionalUnitOfWork
{
    private readonly KafkaTransactionsOptions _options;
    private readonly ILogger _logger;
    private readonly KafkaTxInstrumentation _instrumentation;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly KeyValuePair<string, object?> _producerTag;
    private readonly TransactionalProducer _producer;

    private int _state;
    private int _recordsInTransaction;
    private string[] _trackedTopics = []; // FirstRecordPerTopic: the topics of this transaction whose first record is tracked
    private readonly Lock _trackedTopicsLock = new();
    private long _transactionStartedAt;
    private int _attempt = 1;
    private bool _explicitTransaction;
    private bool _executing;
    private int _disposeStarted;

    // The token of the open transaction (ExecuteAsync's caller's, or the one given to BeginTransaction): a Produce
    // waiting for room in a full local queue stops when it is cancelled. Read only while the queue is full.
    private CancellationToken _transactionCancellation;

    // Calls running now (Dispose waits for them), the explicit call running now (one at a time), and Dispose's state:
    // _disposing refuses new calls; _idle and _idleEvent are set when the last call in flight ends.
    private int _callsInFlight;
    private string? _explicitCall;
    private int _disposing;
    private TaskCompletionSource? _idle;
    private ManualResetEventSlim? _idleEvent;

    // The fatal error that broke the producer while a transaction was open; the producer is replaced when the
    // transaction is aborted. Until then every call of the transaction fails at once, without touching the producer.
    private KafkaException? _brokenBy;
    private int _replacementsInARow;
    private int _failedCommitsInARow;
    private TimeSpan _backoffBeforeInit;

    public TransactionalUnitOfWork(
        string name,
        KafkaTransactionsOptions options,
        IKafkaClientFactory clientFactory,
        ILogger logger,
        KafkaTxInstrumentation instrumentation,
        TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(clientFactory);
        _options = options;
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _instrumentation = instrumentation ?? throw new ArgumentNullException(nameof(instrumentation));
        _time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        TransactionalId = options.ResolveTransactionalId()
            ?? throw new InvalidOperationException("The options name no transactional id; validate them (AddKafkaTransactions does) before creating a unit of work.");
        _producerTag = new("kafkatx.producer", string.IsNullOrEmpty(name) ? "default" : name);
        _producer = new TransactionalProducer(options, clientFactory, logger, timeProvider, TransactionalId);
    }

    public string TransactionalId { get; }

    public TransactionState State => (TransactionState)Volatile.Read(ref _state);

    /// <summary>The unit's logger, for the pool that holds it as a slot.</summary>
    internal ILogger Logger => _logger;

    /// <summary>How many times the producer has been replaced, by self-healing or ResetAsync.</summary>
    internal int ProducerReplacements => _producer.Replacements;

    /// <summary>Producers replaced by self-healing since a transaction last completed (for health checks).</summary>
    internal int ReplacementsInARow => Volatile.Read(ref _replacementsInARow);

    /// <summary>Commits that failed since one last succeeded (for health checks).</summary>
    internal int FailedCommitsInARow => Volatile.Read(ref _failedCommitsInARow);

    /// <summary>
    /// A commit with an unknown outcome, or an abort that did not complete, waits for a call to settle it: the unit
    /// cannot take a transaction at once (for health checks). False while a call is running, settling it or not.
    /// </summary>
    internal bool AwaitsSettlement => (State is TransactionState.Committing or TransactionState.Aborting) && Volatile.Read(ref _callsInFlight) == 0;

    // ---------------------------------------------------------------- initialization

    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfTerminal(nameof(InitializeAsync));
        if (State is not (TransactionState.Uninitialized or TransactionState.Initializing or TransactionState.Committing))
        {
            return;
        }

        ThrowIfDisposing(nameof(InitializeAsync));
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            EnterCall(nameof(InitializeAsync));
            try
            {
                ThrowIfTerminal(nameof(InitializeAsync));
                if (State == TransactionState.Committing)
                {
                    await SettlePendingCommitAsync(nameof(InitializeAsync), cancellationToken).ConfigureAwait(false);
                }

                if (State == TransactionState.Uninitialized)
                {
                    await InitializeCoreAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                ExitCall();
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task InitializeCoreAsync(CancellationToken cancellationToken)
    {
        if (_backoffBeforeInit > TimeSpan.Zero)
        {
            // A replaced producer: a fatal error that comes back at once should not spin.
            await Task.Delay(_backoffBeforeInit, _time, cancellationToken).ConfigureAwait(false);
            _backoffBeforeInit = TimeSpan.Zero;
        }

        Log.Initializing(_logger, TransactionalId);
        var started = _time.GetTimestamp();
        TransitionTo(TransactionState.Initializing);
        try
        {
            await _producer.InitTransactionsAsync(cancellationToken).ConfigureAwait(false);
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

            // A fresh producer that cannot initialize is not healed by another fresh producer.
            throw EnterTerminalFailure(kind, e, $"InitTransactions for transactional.id '{TransactionalId}' failed");
        }

        TransitionTo(TransactionState.Ready);
        Log.Initialized(_logger, TransactionalId, (long)_time.GetElapsedTime(started).TotalMilliseconds);
    }

    // ---------------------------------------------------------------- explicit transaction control

    public void BeginTransaction() => BeginTransaction(CancellationToken.None);

    /// <summary>
    /// Opens a transaction, as <see cref="BeginTransaction()"/> does, whose cancellation is <paramref name="cancellation"/>:
    /// a Produce of this transaction waiting for room in the full local queue stops (OperationCanceledException) when
    /// it is cancelled. The processor passes the token its handlers get.
    /// </summary>
    /// <param name="cancellation">The transaction's cancellation; it is not otherwise observed.</param>
    internal void BeginTransaction(CancellationToken cancellation)
    {
        ThrowIfTerminal(nameof(BeginTransaction));
        EnterCall(nameof(BeginTransaction));
        try
        {
            if (!_gate.Wait(0, CancellationToken.None))
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
                    ThrowIfTerminal(nameof(BeginTransaction));
                    throw InvalidState(nameof(BeginTransaction), state, NextStep(state));
                }

                BeginCore(cancellation);
                _explicitTransaction = true;
            }
            catch
            {
                _gate.Release();
                throw;
            }
        }
        finally
        {
            ExitCall();
        }
    }

    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfOwnedByExecute(nameof(CommitAsync));
        EnterCall(nameof(CommitAsync), explicitCall: true);
        try
        {
            var state = State;
            if (state == TransactionState.InTransaction && _explicitTransaction)
            {
                try
                {
                    await CommitCoreAsync(cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    ReleaseExplicitTransactionIfEnded();
                }

                return;
            }

            if (state == TransactionState.Committing && !_explicitTransaction)
            {
                await ResumePendingCommitAsync(cancellationToken).ConfigureAwait(false);
                return;
            }

            ThrowIfTerminal(nameof(CommitAsync));
            throw InvalidState(nameof(CommitAsync), state, state == TransactionState.Ready ? "No transaction is open: call BeginTransaction first." : NextStep(state));
        }
        finally
        {
            ExitCall(explicitCall: true);
        }
    }

    public async Task AbortAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfOwnedByExecute(nameof(AbortAsync));
        EnterCall(nameof(AbortAsync), explicitCall: true);
        try
        {
            var state = State;
            if ((state is TransactionState.InTransaction or TransactionState.Aborting) && _explicitTransaction)
            {
                try
                {
                    await AbortCoreAsync("aborted by the caller", cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    ReleaseExplicitTransactionIfEnded();
                }

                return;
            }

            if (state == TransactionState.Aborting)
            {
                await ResumeAbortAsync(cancellationToken).ConfigureAwait(false);
                return;
            }

            ThrowIfTerminal(nameof(AbortAsync));
            throw InvalidState(nameof(AbortAsync), state, state switch
            {
                TransactionState.Ready => "No transaction is open.",
                TransactionState.Committing => "A commit that was sent cannot be aborted. " + NextStep(state),
                _ => NextStep(state),
            });
        }
        finally
        {
            ExitCall(explicitCall: true);
        }
    }

    /// <summary>CommitAsync on a commit whose outcome was left unknown (by either path): resumes it and reports its outcome.</summary>
    private async Task ResumePendingCommitAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var state = State;
            if (state != TransactionState.Committing)
            {
                ThrowIfTerminal(nameof(CommitAsync));
                throw InvalidState(nameof(CommitAsync), state, "The commit whose outcome was unknown was settled meanwhile by another call (its outcome is in the log); no transaction is open.");
            }

            Log.SettlingPendingCommit(_logger, TransactionalId, nameof(CommitAsync));
            await CommitCoreAsync(cancellationToken).ConfigureAwait(false);
            Log.PendingCommitSettled(_logger, TransactionalId, "committed (the resumed commit completed)");
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>AbortAsync on an abort that ExecuteAsync left incomplete: resumes it.</summary>
    private async Task ResumeAbortAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Settled meanwhile by another call (ExecuteAsync resumes it first): then there is nothing left to abort.
            if (State == TransactionState.Aborting)
            {
                await AbortCoreAsync("resuming an abort that did not complete earlier", cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
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
            throw InvalidState(nameof(Produce), state, state == TransactionState.Ready
                ? "Records can only be written inside a transaction: call BeginTransaction, or use ExecuteAsync."
                : "Records can only be written inside a transaction. " + NextStep(state));
        }

        ThrowIfBroken(nameof(Produce));
        var headers = WithTraceContext(message.Headers);
        var serializers = _options.Serializers;
        var key = serializers.Serialize(message.Key, new SerializationContext(MessageComponentType.Key, topic, headers));
        var value = serializers.Serialize(message.Value, new SerializationContext(MessageComponentType.Value, topic, headers));

        // The byte-level message is rented, not allocated: Confluent.Kafka reads it during Produce and keeps no
        // reference to it, so the hot path allocates nothing beyond what Confluent.Kafka itself allocates.
        var raw = ScratchMessage.Rent(key, value, headers, message.Timestamp);
        try
        {
            _producer.Produce(topic, topicPartition, raw, TracksDeliveryOf(topic), _transactionCancellation);
            Interlocked.Increment(ref _recordsInTransaction);
        }
        catch (ProduceException<byte[]?, byte[]?> e)
        {
            throw ProduceFailure(topic, e);
        }
        finally
        {
            ScratchMessage.Return(raw);
        }
    }

    /// <summary>Whether this record's delivery is tracked: every one, none, or the first to each topic in the transaction.</summary>
    private bool TracksDeliveryOf(string topic)
    {
        switch (_options.DeliveryTracking)
        {
            case DeliveryTracking.EveryRecord:
                return true;
            case DeliveryTracking.None:
                return false;
        }

        if (Holds(Volatile.Read(ref _trackedTopics), topic))
        {
            return false;
        }

        lock (_trackedTopicsLock)
        {
            // Records may be produced from several threads within one transaction: the first to a topic wins.
            if (Holds(_trackedTopics, topic))
            {
                return false;
            }

            Volatile.Write(ref _trackedTopics, [.. _trackedTopics, topic]);
            return true;
        }

        static bool Holds(string[] topics, string topic)
        {
            foreach (var seen in topics)
            {
                if (string.Equals(seen, topic, StringComparison.Ordinal))
                {
                    return true;
                }
            }

            return false;
        }
    }

    private KafkaTransactionException ProduceFailure(string topic, ProduceException<byte[]?, byte[]?> e)
    {
        TraceError(e);
        var kind = TransactionErrorClassifier.Classify(e.Error);
        return kind switch
        {
            TransactionErrorKind.Fenced => EnterTerminalFailure(kind, e, $"Produce to '{topic}' failed"),
            TransactionErrorKind.Fatal => MarkBroken(e, $"Produce to '{topic}'"),
            _ => Failure(kind, e, $"Produce to '{topic}' in the transaction of '{TransactionalId}' was refused by the client: {e.Error.Code} ({e.Error.Reason}). " + Advice(kind)),
        };
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

        // Inside ExecuteAsync's work the call is part of ExecuteAsync's; otherwise it is an explicit call of its own.
        var explicitCall = !_executing;
        if (explicitCall)
        {
            EnterCall(nameof(SendOffsetsAsync), explicitCall: true);
        }

        try
        {
            await SendOffsetsCoreAsync(list, groupMetadata, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (explicitCall)
            {
                ExitCall(explicitCall: true);
            }
        }
    }

    private async Task SendOffsetsCoreAsync(List<TopicPartitionOffset> list, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken)
    {
        var state = State;
        if (state != TransactionState.InTransaction)
        {
            ThrowIfTerminal(nameof(SendOffsetsAsync));
            throw InvalidState(nameof(SendOffsetsAsync), state, "Offsets can only be sent inside a transaction. " + NextStep(state));
        }

        ThrowIfBroken(nameof(SendOffsetsAsync));
        ThrowIfExpired(nameof(SendOffsetsAsync));
        try
        {
            await _producer.SendOffsetsAsync(list, groupMetadata, cancellationToken).ConfigureAwait(false);
            TraceOffsetsSent(list.Count);
        }
        catch (KafkaException e)
        {
            TraceError(e);
            var kind = TransactionErrorClassifier.Classify(e.Error);
            switch (kind)
            {
                case TransactionErrorKind.Fenced:
                    throw EnterTerminalFailure(kind, e, "SendOffsetsToTransaction failed");
                case TransactionErrorKind.Fatal:
                    throw MarkBroken(e, "SendOffsetsToTransaction");
                default:
                    // The transaction is still open but may not commit: the caller (or ExecuteAsync) aborts it.
                    throw Failure(kind == TransactionErrorKind.Retriable ? TransactionErrorKind.Abortable : kind, e,
                        $"SendOffsetsToTransaction for {list.Count} partition(s) in the transaction of '{TransactionalId}' failed: {e.Error.Code} ({e.Error.Reason}). Abort the transaction; the consumer must rewind to its committed offsets.");
            }
        }
    }

    // ---------------------------------------------------------------- begin, commit and abort

    private void BeginCore(CancellationToken cancellation)
    {
        try
        {
            _producer.BeginTransaction();
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            if (kind == TransactionErrorKind.Fenced || (kind == TransactionErrorKind.Fatal && !CanReplaceProducer(e.Error)))
            {
                throw EnterTerminalFailure(kind, e, "BeginTransaction failed");
            }

            if (kind == TransactionErrorKind.Fatal)
            {
                // librdkafka reports a fatal error raised in the background at the next call, often this one.
                ReplaceProducer(e.Error, "BeginTransaction");
                throw Failure(TransactionErrorKind.Abortable, e,
                    $"BeginTransaction for '{TransactionalId}' failed: the producer had hit a fatal error {e.Error.Code} ({e.Error.Reason}). Nothing was written. The producer was replaced and initializes on next use (ExecuteAsync does so; otherwise call InitializeAsync).");
            }

            throw Failure(kind, e, $"BeginTransaction for '{TransactionalId}' failed: {e.Error.Code} ({e.Error.Reason}).");
        }

        Volatile.Write(ref _recordsInTransaction, 0);
        _transactionCancellation = cancellation;
        _trackedTopics = [];
        _transactionStartedAt = _time.GetTimestamp();
        TransitionTo(TransactionState.InTransaction);
        StartTransactionActivity();
    }

    private async Task CommitCoreAsync(CancellationToken cancellationToken)
    {
        try
        {
            await CommitOrRefuseAsync(cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _failedCommitsInARow, 0);
        }
        catch (KafkaTransactionException)
        {
            Interlocked.Increment(ref _failedCommitsInARow);
            throw;
        }
    }

    private async Task CommitOrRefuseAsync(CancellationToken cancellationToken)
    {
        var commitStarted = _time.GetTimestamp();
        var state = State;
        if (state == TransactionState.InTransaction)
        {
            await RefuseDoomedCommitAsync().ConfigureAwait(false);

            // Cancellation is honoured up to here: nothing has been sent, and the transaction stays open.
            cancellationToken.ThrowIfCancellationRequested();
            TransitionTo(TransactionState.Committing);
        }
        else if (state != TransactionState.Committing)
        {
            ThrowIfTerminal(nameof(CommitAsync));
            throw InvalidState(nameof(CommitAsync), state, NextStep(state));
        }

        var records = Volatile.Read(ref _recordsInTransaction);
        try
        {
            // ExecuteAsync and settlement pass no token: a commit that was sent runs to its outcome within
            // CommitTimeout. The explicit CommitAsync passes its caller's, which may stop waiting (outcome unknown).
            await _producer.CommitTransactionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException e)
        {
            // Only the explicit CommitAsync gets here: Committing, with an unknown outcome the next call settles.
            Log.CommitOutcomeUnknown(_logger, TransactionalId, e);
            EndTransactionActivity("outcome_unknown", error: e);
            throw;
        }
        catch (KafkaException e)
        {
            TraceError(e);
            var failure = await CommitFailureAsync(e).ConfigureAwait(false);
            EndTransactionActivity(failure.Kind == TransactionErrorKind.OutcomeUnknown ? "outcome_unknown" : "aborted", error: failure);
            throw failure;
        }

        TransitionTo(TransactionState.Ready);
        _replacementsInARow = 0;
        var elapsed = _time.GetElapsedTime(commitStarted);
        _instrumentation.Commits.Add(1, _producerTag);
        _instrumentation.RecordsCommitted.Add(records, _producerTag);
        _instrumentation.RecordsPerTransaction.Record(records, _producerTag);
        _instrumentation.CommitDuration.Record(elapsed.TotalSeconds, _producerTag);
        RecordTransactionDuration("committed");
        EndTransactionActivity("committed");
        Log.Committed(_logger, TransactionalId, records, (long)elapsed.TotalMilliseconds);
    }

    /// <summary>
    /// Aborts, instead of committing, a transaction that cannot commit: one older than the transaction timeout, one
    /// whose producer hit a fatal error, or one with a record Kafka refused. Throws what the caller should see.
    /// </summary>
    private async Task RefuseDoomedCommitAsync()
    {
        var age = _time.GetElapsedTime(_transactionStartedAt);
        if (age >= _options.TransactionTimeout)
        {
            Log.TransactionExpired(_logger, TransactionalId, (long)age.TotalMilliseconds, (long)_options.TransactionTimeout.TotalMilliseconds);
            await AbortCoreAsync("older than transaction.timeout.ms", CancellationToken.None).ConfigureAwait(false);
            throw Failure(TransactionErrorKind.Abortable, new Error(ErrorCode.Local_TimedOut, "transaction older than transaction.timeout.ms"), null,
                $"The transaction of '{TransactionalId}' was open for {age.TotalMilliseconds:F0} ms, not below TransactionTimeout (transaction.timeout.ms = {_options.TransactionTimeout.TotalMilliseconds:F0} ms). The broker aborts such transactions, so it was aborted instead of committed and nothing in it is visible. Make the work shorter (fewer records per transaction) or raise TransactionTimeout.");
        }

        if (_brokenBy is { } broken)
        {
            await AbortCoreAsync("the producer hit a fatal error", CancellationToken.None).ConfigureAwait(false);
            throw Failure(TransactionErrorKind.Abortable, broken.Error, broken,
                $"The transaction of '{TransactionalId}' could not commit: its producer hit a fatal error {broken.Error.Code} ({broken.Error.Reason}). The producer was replaced, nothing in the transaction is visible, and the work may run again.");
        }

        var early = _producer.SnapshotFailures();
        if (early.Count > 0)
        {
            var error = early[0].Error;
            TraceError(error);
            await AbortCoreAsync("a record was not delivered", CancellationToken.None).ConfigureAwait(false);
            throw DeliveryFailed(KindOf(early), error, null, early);
        }
    }

    /// <summary>What a failed CommitTransaction means, after whatever it requires (abort, replacement) is done.</summary>
    private async Task<KafkaTransactionException> CommitFailureAsync(KafkaException e)
    {
        var kind = TransactionErrorClassifier.Classify(e.Error);
        switch (kind)
        {
            case TransactionErrorKind.Retriable:
                Log.CommitOutcomeUnknown(_logger, TransactionalId, e);
                return Failure(TransactionErrorKind.OutcomeUnknown, e,
                    $"The commit of '{TransactionalId}' did not complete within CommitTimeout ({_options.CommitTimeout}); last error {e.Error.Code} ({e.Error.Reason}). Its outcome is unknown and it is not treated as committed, nor run again. " + PendingCommitNextStep);
            case TransactionErrorKind.Fenced:
                return EnterTerminalFailure(kind, e, "CommitTransaction failed");
            case TransactionErrorKind.Fatal when !CanReplaceProducer(e.Error):
                return EnterTerminalFailure(kind, e, "CommitTransaction failed");
            case TransactionErrorKind.Fatal:
                var refused = await _producer.CollectFailuresAsync().ConfigureAwait(false);
                ReplaceProducer(e.Error, "CommitTransaction");
                await InitializeReplacementAsync().ConfigureAwait(false);
                if (refused.Count > 0)
                {
                    // A record was refused, so the commit cannot have taken effect: the new producer aborted it.
                    return DeliveryFailed(KindOf(refused), e.Error, e, refused);
                }

                // The commit request may have reached the coordinator before the error (a retried EndTxn, say).
                Log.CommitOutcomeUnknown(_logger, TransactionalId, e);
                return Failure(TransactionErrorKind.OutcomeUnknown, e,
                    $"The commit of '{TransactionalId}' failed with a fatal error {e.Error.Code} ({e.Error.Reason}) after it was sent, so whether it took effect is unknown; it is not treated as committed and the work is not run again. The producer was replaced: its InitTransactions completed or aborted the transaction, and the unit is usable. Check the output (read_committed) before doing the work again.");
            default:
                var failures = await _producer.CollectFailuresAsync().ConfigureAwait(false);
                await AbortCoreAsync($"the commit failed with {e.Error.Code}", CancellationToken.None).ConfigureAwait(false);
                return DeliveryFailed(failures.Count > 0 ? Worst(kind, KindOf(failures)) : kind, e.Error, e, failures);
        }
    }

    private async Task AbortCoreAsync(string reason, CancellationToken cancellationToken)
    {
        TransitionTo(TransactionState.Aborting);
        if (_brokenBy is { } broken)
        {
            await AbortByReplacingProducerAsync(broken, reason).ConfigureAwait(false);
            return;
        }

        try
        {
            await _producer.AbortTransactionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            if (kind == TransactionErrorKind.Retriable)
            {
                throw Failure(kind, e, $"Aborting the transaction of '{TransactionalId}' did not complete within AbortTimeout ({_options.AbortTimeout}): {e.Error.Code} ({e.Error.Reason}). Nothing in it is visible. Call AbortAsync again (ExecuteAsync does so before its next transaction), or dispose: the broker aborts it after transaction.timeout.ms, and a new producer with this transactional.id aborts it at once.");
            }

            if (kind == TransactionErrorKind.Fenced)
            {
                throw EnterTerminalFailure(kind, e, "AbortTransaction failed");
            }

            // librdkafka can fail an abort fatally (INVALID_TXN_STATE, confluentinc/librdkafka#4849; no KIP-360 epoch
            // bump on brokers before 2.5). A new producer's InitTransactions aborts the transaction just as well.
            await AbortByReplacingProducerAsync(e, reason).ConfigureAwait(false);
            return;
        }

        _producer.ClearFailures();
        _replacementsInARow = 0;
        TransitionTo(TransactionState.Ready);
        RecordAborted(reason);
    }

    /// <summary>
    /// Ends the open transaction by replacing the producer: nothing of it can become visible, since the new producer's
    /// InitTransactions (run here) aborts it. Throws, entering Faulted, when the producer may not be replaced.
    /// </summary>
    private async Task AbortByReplacingProducerAsync(KafkaException cause, string reason)
    {
        if (!CanReplaceProducer(cause.Error))
        {
            throw EnterTerminalFailure(TransactionErrorKind.Fatal, cause, "AbortTransaction failed");
        }

        ReplaceProducer(cause.Error, "AbortTransaction");
        RecordAborted(reason + " (by replacing the producer)");
        await InitializeReplacementAsync().ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- reset and dispose

    public async Task ResetAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfTerminal(nameof(ResetAsync));
        EnterCall(nameof(ResetAsync), explicitCall: true);
        try
        {
            var ownsGate = _explicitTransaction;
            if (!ownsGate)
            {
                await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            var state = State;
            if (ownsGate && state == TransactionState.InTransaction && _brokenBy is null)
            {
                // Refused before the try: the gate belongs to the open explicit transaction, not to this call.
                throw InvalidState(nameof(ResetAsync), state, "A transaction is open and the producer is healthy: abort it instead.");
            }

            try
            {
                ThrowIfTerminal(nameof(ResetAsync));
                state = State;
                if (state == TransactionState.InTransaction && _brokenBy is null)
                {
                    throw InvalidState(nameof(ResetAsync), state, "A transaction is open and the producer is healthy: abort it instead.");
                }

                Log.Resetting(_logger, TransactionalId, state);
                EndTransactionActivity("reset");
                _producer.Replace();
                _brokenBy = null;
                _replacementsInARow = 0;
                _backoffBeforeInit = TimeSpan.Zero;
                Volatile.Write(ref _state, (int)TransactionState.Uninitialized);
                _explicitTransaction = false;
                _transactionCancellation = default;
            }
            finally
            {
                _gate.Release();
            }
        }
        finally
        {
            ExitCall(explicitCall: true);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!BeginDispose())
        {
            return;
        }

        var bound = DisposeWaitBound;
        if (Volatile.Read(ref _callsInFlight) > 0)
        {
            Log.DisposeWaiting(_logger, TransactionalId, (long)bound.TotalMilliseconds);
            try
            {
                await _idle!.Task.WaitAsync(bound, _time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                GiveUpWaiting(bound);
                return;
            }
        }

        var ownsGate = _explicitTransaction || await _gate.WaitAsync(_options.AbortTimeout).ConfigureAwait(false);
        try
        {
            if ((State is TransactionState.InTransaction or TransactionState.Aborting) && _brokenBy is null)
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
        if (!BeginDispose())
        {
            return;
        }

        var bound = DisposeWaitBound;
        if (Volatile.Read(ref _callsInFlight) > 0)
        {
            Log.DisposeWaiting(_logger, TransactionalId, (long)bound.TotalMilliseconds);
            if (!_idleEvent!.Wait(bound))
            {
                GiveUpWaiting(bound);
                return;
            }
        }

        var ownsGate = _explicitTransaction || _gate.Wait(_options.AbortTimeout);
        try
        {
            if ((State is TransactionState.InTransaction or TransactionState.Aborting) && _brokenBy is null)
            {
                Log.DisposingOpenTransaction(_logger, TransactionalId);
                try
                {
                    _producer.AbortTransactionNow();
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

    /// <summary>How long Dispose waits for the call in flight: a commit and then an abort, each to its deadline.</summary>
    private TimeSpan DisposeWaitBound => _options.CommitTimeout + _options.AbortTimeout;

    /// <summary>
    /// Starts disposing, once: from now on every new call is refused, a Produce waiting for queue room stops, and the
    /// end of the last call in flight is signalled. Returns false when disposal had already started.
    /// </summary>
    private bool BeginDispose()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) == 1)
        {
            return false;
        }

        _producer.StopWaiting();
        _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _idleEvent = new ManualResetEventSlim();

        // After the signals exist (a call ending now finds them) and before the count is read: EnterCall increments
        // the count before it reads this flag, so either Dispose sees the call or the call sees Dispose.
        Interlocked.Exchange(ref _disposing, 1);
        return true;
    }

    /// <summary>
    /// The call in flight outlasted the bounded wait: the unit is Disposed now (every call refused), and the rest of
    /// the disposal (its producer, the transaction gate) happens when that call returns. Its open transaction is not
    /// aborted: the broker aborts it after transaction.timeout.ms, or a new producer with this id at once.
    /// </summary>
    private void GiveUpWaiting(TimeSpan bound)
    {
        Log.DisposeGaveUpWaiting(_logger, TransactionalId, (long)bound.TotalMilliseconds);
        Interlocked.Exchange(ref _state, (int)TransactionState.Disposed);
        _ = _idle!.Task.ContinueWith(
            static (_, state) =>
            {
                // Every call has returned: an explicit transaction still holds the gate only if no call ended it.
                var unit = (TransactionalUnitOfWork)state!;
                unit.FinishDispose(unit._explicitTransaction);
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.None,
            TaskScheduler.Default);
    }

    private void FinishDispose(bool ownsGate)
    {
        // A producer broken mid-transaction is dropped without an abort: the broker aborts its transaction after
        // transaction.timeout.ms, or at once when the next instance with this transactional.id initializes.
        Volatile.Write(ref _state, (int)TransactionState.Disposed);
        EndTransactionActivity("disposed");
        _producer.Dispose();
        _explicitTransaction = false;
        if (ownsGate)
        {
            // Wake queued callers: they find the unit disposed and throw.
            _gate.Release();
        }
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>What every abort records, however it was done: the count, the duration, the span's end, the log line.</summary>
    private void RecordAborted(string reason)
    {
        _instrumentation.Aborts.Add(1, _producerTag);
        RecordTransactionDuration("aborted");
        EndTransactionActivity("aborted", reason);
        Log.Aborted(_logger, TransactionalId, reason);
    }

    private void RecordTransactionDuration(string outcome) =>
        _instrumentation.TransactionDuration.Record(
            _time.GetElapsedTime(_transactionStartedAt).TotalSeconds,
            _producerTag,
            new KeyValuePair<string, object?>("kafkatx.transaction.outcome", outcome));

    private void ThrowIfExpired(string operation)
    {
        var age = _time.GetElapsedTime(_transactionStartedAt);
        if (age >= _options.TransactionTimeout)
        {
            throw Failure(TransactionErrorKind.Abortable, new Error(ErrorCode.Local_TimedOut, "transaction older than transaction.timeout.ms"), null,
                $"{operation}: the transaction of '{TransactionalId}' has been open for {age.TotalMilliseconds:F0} ms, not below TransactionTimeout ({_options.TransactionTimeout.TotalMilliseconds:F0} ms); the broker aborts it. Abort it and start again with less work per transaction.");
        }
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

    /// <summary>
    /// Ends the explicit transaction once a call has finished it: committed, aborted, or committed with an unknown
    /// outcome, which the next call settles (ExecuteAsync, InitializeAsync, CommitAsync or ResetAsync, not only its
    /// owner). An open transaction, or an abort that did not complete, stays with its owner.
    /// </summary>
    private void ReleaseExplicitTransactionIfEnded()
    {
        if (_explicitTransaction && State is not (TransactionState.InTransaction or TransactionState.Aborting))
        {
            _explicitTransaction = false;
            _transactionCancellation = default;
            _gate.Release();
        }
    }

    /// <summary>
    /// Counts a call as in flight, or refuses it (ObjectDisposedException) once Dispose has begun. An explicit call
    /// (commit, abort, send offsets, reset) is also refused while another one runs: the explicit calls are for one owner.
    /// </summary>
    private void EnterCall(string operation, bool explicitCall = false)
    {
        if (explicitCall && Interlocked.CompareExchange(ref _explicitCall, operation, null) is { } running)
        {
            throw new InvalidOperationException(
                $"{operation} is not valid while {running} of '{TransactionalId}' is running (state {State}): the explicit calls of a transaction are for one owner, one call at a time. Await {running} first.");
        }

        Interlocked.Increment(ref _callsInFlight);
        if (Volatile.Read(ref _disposing) == 1)
        {
            ExitCall(explicitCall);
            throw Disposed(operation);
        }
    }

    private void ExitCall(bool explicitCall = false)
    {
        if (explicitCall)
        {
            Volatile.Write(ref _explicitCall, null);
        }

        if (Interlocked.Decrement(ref _callsInFlight) == 0 && Volatile.Read(ref _disposing) == 1)
        {
            _idle!.TrySetResult();
            _idleEvent!.Set();
        }
    }

    /// <summary>Refuses a call before it waits for its turn, once Dispose has begun.</summary>
    private void ThrowIfDisposing(string operation)
    {
        if (Volatile.Read(ref _disposing) == 1)
        {
            throw Disposed(operation);
        }
    }

    private ObjectDisposedException Disposed(string operation) =>
        new(nameof(TransactionalUnitOfWork), State == TransactionState.Disposed
            ? $"{operation} is not valid in state Disposed: the unit of work for '{TransactionalId}' has been disposed."
            : $"{operation} is refused: the unit of work for '{TransactionalId}' is being disposed (state Disposed once the calls in flight end).");

    /// <summary>What may be done in a state where the call made is refused: only calls that work in that state.</summary>
    private static string NextStep(TransactionState state) => state switch
    {
        TransactionState.Uninitialized => "Call InitializeAsync first (ExecuteAsync initializes on its own).",
        TransactionState.Initializing => "InitializeAsync is running: wait for it (ExecuteAsync waits on its own).",
        TransactionState.Ready => "No transaction is open: call BeginTransaction, or use ExecuteAsync.",
        TransactionState.InTransaction => "A transaction is open: commit or abort it (ExecuteAsync queues behind it).",
        TransactionState.Committing => PendingCommitNextStep,
        TransactionState.Aborting => "An abort did not complete: AbortAsync resumes it, and ExecuteAsync resumes it before its own transaction.",
        _ => string.Empty,
    };

    /// <summary>What may be done while a commit's outcome is unknown; every call named works in that state.</summary>
    private const string PendingCommitNextStep =
        "A commit's outcome is unknown and not settled yet. ExecuteAsync and InitializeAsync settle it on their own before anything else: they resume the commit and, if its outcome is still unknown, replace the producer, whose InitTransactions completes or aborts it. CommitAsync resumes it and reports its outcome; ResetAsync replaces the producer at once.";

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
}
