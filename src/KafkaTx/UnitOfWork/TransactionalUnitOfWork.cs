using Confluent.Kafka;
using KafkaTx.Clients;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// The transactional unit of work: its API, its gate, and the answers of its parts turned into what the caller sees.
/// See <see cref="ITransactionalUnitOfWork"/> for the contract, <see cref="TransactionTransitions"/> (and
/// <c>docs/state-machine.md</c>) for the states, and <see cref="TransactionOrchestrator"/> for what each call does.
/// </summary>
/// <remarks>
/// <para>Concurrency: <see cref="_gate"/> admits one transaction at a time. ExecuteAsync waits for it; the explicit
/// BeginTransaction takes it without waiting (and throws when it is held) and keeps it until the transaction ends
/// (committed, aborted, or a commit whose outcome is unknown: that one is settled by the next call, not its owner).
/// Who holds it is <see cref="TransactionLifecycle.Owner"/>.</para>
/// <para>Calls in flight: every public call but Produce counts itself in <see cref="CallTracker"/> while it runs, and
/// the explicit calls of one transaction run one at a time. Dispose refuses new calls at once, then waits (bounded) for
/// the calls in flight, so that it never aborts or disposes the producer under one.</para>
/// </remarks>
internal sealed class TransactionalUnitOfWork : ITransactionalUnitOfWork, ISerializingUnit
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly UnitParts _unit;
    private readonly TransactionOrchestrator _orchestrator;
    private readonly CallGuards _guards;
    private readonly ExplicitTransaction _explicit;
    private readonly ExecuteLoop _execute;
    private readonly UnitDisposal _disposal;

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
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(instrumentation);
        ArgumentNullException.ThrowIfNull(timeProvider);
        TransactionalId = options.ResolveTransactionalId()
            ?? throw new InvalidOperationException("The options name no transactional id; validate them (AddKafkaTransactions does) before creating a unit of work.");
        var producerTag = new KeyValuePair<string, object?>("kafkatx.producer", string.IsNullOrEmpty(name) ? "default" : name);
        var transaction = new OpenTransaction(options, timeProvider);
        var telemetry = new UnitTelemetry(TransactionalId, producerTag, instrumentation, logger, transaction);
        var producer = new TransactionalProducer(options, clientFactory, logger, timeProvider, TransactionalId);
        _unit = new UnitParts(TransactionalId, options, timeProvider, telemetry, new TransactionLifecycle(logger, TransactionalId), transaction, new ProducerSession(options, producer, telemetry), new CallTracker());
        _orchestrator = new TransactionOrchestrator(_unit);
        _guards = new CallGuards(_unit);
        _explicit = new ExplicitTransaction(_unit, _orchestrator, _gate, _guards);
        _execute = new ExecuteLoop(_unit, _orchestrator, _gate, _guards);
        _disposal = new UnitDisposal(_unit, _orchestrator, _gate);
    }

    public string TransactionalId { get; }

    public TransactionState State => _unit.Lifecycle.State;

    /// <summary>The error that fenced or faulted the unit, while it is Fenced or Faulted (for the pool that holds it as a slot).</summary>
    internal Error? EndedBy => _unit.Lifecycle.CauseOf(State);

    /// <summary>The unit's logger, for the pool that holds it as a slot.</summary>
    internal ILogger Logger => _unit.Telemetry.Logger;

    /// <summary>How many times the producer has been replaced, by self-healing or ResetAsync.</summary>
    internal int ProducerReplacements => _unit.Producer.Replacements;

    /// <summary>Producers replaced by self-healing since a transaction last completed (for health checks).</summary>
    internal int ReplacementsInARow => _unit.Session.ReplacementsInARow;

    /// <summary>Whether the producer reaches its brokers (for health checks).</summary>
    internal BrokerConnection Connection => _unit.Producer.Connection;

    /// <summary>Whether the producer's initialization is getting anywhere (for health checks and the start-up initializer).</summary>
    internal InitProgress Initialization => _unit.Producer.Initialization;

    /// <summary>Commits that failed since one last succeeded (for health checks).</summary>
    internal int FailedCommitsInARow => _orchestrator.Commit.FailedInARow;

    /// <summary>
    /// A commit with an unknown outcome, or an abort that did not complete, waits for a call to settle it: the unit
    /// cannot take a transaction at once (for health checks). False while a call is running, settling it or not.
    /// </summary>
    internal bool AwaitsSettlement => (State is TransactionState.Committing or TransactionState.Aborting) && _unit.Calls.InFlight == 0;

    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        _guards.ThrowIfTerminal(TransactionCall.Initialize);
        if (State is not (TransactionState.Uninitialized or TransactionState.Initializing or TransactionState.Committing))
        {
            return;
        }

        _guards.ThrowIfDisposing(TransactionCall.Initialize);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _guards.Enter(TransactionCall.Initialize);
            try
            {
                _guards.ThrowIfTerminal(TransactionCall.Initialize);
                if (State == TransactionState.Committing)
                {
                    await _orchestrator.SettlePendingCommitAsync(nameof(InitializeAsync), cancellationToken).ConfigureAwait(false);
                }

                if (State == TransactionState.Uninitialized)
                {
                    await _orchestrator.InitializeAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                _guards.Exit();
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    public void BeginTransaction() => BeginTransaction(CancellationToken.None);

    /// <summary>
    /// Opens a transaction, as <see cref="BeginTransaction()"/> does, whose cancellation is <paramref name="cancellation"/>:
    /// a Produce of this transaction waiting for room in the full local queue stops (OperationCanceledException) when
    /// it is cancelled. The processor passes the token its handlers get.
    /// </summary>
    /// <param name="cancellation">The transaction's cancellation; it is not otherwise observed.</param>
    internal void BeginTransaction(CancellationToken cancellation) => _explicit.Begin(cancellation);

    public Task CommitAsync(CancellationToken cancellationToken = default) => _explicit.CommitAsync(cancellationToken);

    public Task AbortAsync(CancellationToken cancellationToken = default) => _explicit.AbortAsync(cancellationToken);

    public void Produce<TKey, TValue>(string topic, Message<TKey, TValue> message)
    {
        if (string.IsNullOrEmpty(topic))
        {
            throw new ArgumentException("The topic is null or empty; name the topic to write to.", nameof(topic));
        }

        ArgumentNullException.ThrowIfNull(message);
        _guards.ThrowIfNotInTransaction(TransactionCall.Produce);
        _orchestrator.Writes.Produce(topic, null, message);
    }

    public void Produce<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message)
    {
        ArgumentNullException.ThrowIfNull(topicPartition);
        if (string.IsNullOrEmpty(topicPartition.Topic))
        {
            throw new ArgumentException("The topic is null or empty; name the topic to write to.", nameof(topicPartition));
        }

        ArgumentNullException.ThrowIfNull(message);
        _guards.ThrowIfNotInTransaction(TransactionCall.Produce);
        _orchestrator.Writes.Produce(topicPartition.Topic, topicPartition, message);
    }

    public ValueTask ProduceAsync<TKey, TValue>(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrEmpty(topic))
        {
            throw new ArgumentException("The topic is null or empty; name the topic to write to.", nameof(topic));
        }

        ArgumentNullException.ThrowIfNull(message);
        _guards.ThrowIfNotInTransaction(TransactionCall.Produce);
        return _orchestrator.Writes.ProduceAsync(topic, null, message, cancellationToken);
    }

    public ValueTask ProduceAsync<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topicPartition);
        if (string.IsNullOrEmpty(topicPartition.Topic))
        {
            throw new ArgumentException("The topic is null or empty; name the topic to write to.", nameof(topicPartition));
        }

        ArgumentNullException.ThrowIfNull(message);
        _guards.ThrowIfNotInTransaction(TransactionCall.Produce);
        return _orchestrator.Writes.ProduceAsync(topicPartition.Topic, topicPartition, message, cancellationToken);
    }

    bool ISerializingUnit.SerializesSynchronously<TKey, TValue>() => _orchestrator.Writes.SerializesSynchronously<TKey, TValue>();

    ValueTask<SerializedRecord> ISerializingUnit.SerializeAsync<TKey, TValue>(string topic, Message<TKey, TValue> message, long transaction, CancellationToken cancellationToken)
    {
        _guards.ThrowIfNotInTransaction(TransactionCall.Produce);
        return _orchestrator.Writes.SerializeAsync(topic, message, cancellationToken, onlyIn: transaction);
    }

    void ISerializingUnit.Produce(string topic, TopicPartition? topicPartition, in SerializedRecord record) =>
        _orchestrator.Writes.Produce(topic, topicPartition, record);

    long ISerializingUnit.Transaction => _unit.Transaction.Number;

    int ISerializingUnit.WritesInFlight => _unit.Transaction.WritesInFlight;

    void ISerializingUnit.RefuseLate(long transaction) => _unit.Transaction.RefuseWrite(transaction, started: false);

    void ISerializingUnit.RefuseLate(in SerializedRecord record) => _unit.Transaction.RefuseWrite(record.Transaction, started: true);

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
        var explicitCall = _unit.Lifecycle.Owner != TransactionOwner.Execute;
        if (explicitCall)
        {
            _guards.Enter(TransactionCall.SendOffsets, explicitCall: true);
        }

        try
        {
            _guards.ThrowIfNotInTransaction(TransactionCall.SendOffsets);
            await _orchestrator.Writes.SendOffsetsAsync(list, groupMetadata, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (explicitCall)
            {
                _guards.Exit(explicitCall: true);
            }
        }
    }

    public Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default) =>
        ExecuteAsync(WithResult(work), cancellationToken);

    /// <summary>Work without a result as work with one, so that one ExecuteAsync serves both (the pool's too).</summary>
    internal static Func<ITransactionScope, CancellationToken, ValueTask<bool>> WithResult(Func<ITransactionScope, CancellationToken, ValueTask> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        return async (scope, ct) =>
        {
            await work(scope, ct).ConfigureAwait(false);
            return true;
        };
    }

    public Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default) =>
        _execute.RunAsync(this, work, cancellationToken);

    public async Task ResetAsync(CancellationToken cancellationToken = default)
    {
        _guards.ThrowIfTerminal(TransactionCall.Reset);
        _guards.Enter(TransactionCall.Reset, explicitCall: true);
        try
        {
            var ownsGate = _unit.Lifecycle.Owner == TransactionOwner.Explicit;
            if (!ownsGate)
            {
                await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            if (ownsGate && State == TransactionState.InTransaction && _unit.Session.BrokenBy is null)
            {
                // Refused before the try: the gate belongs to the open explicit transaction, not to this call.
                throw _guards.Refusal(TransactionCall.Reset, State);
            }

            try
            {
                _guards.ThrowIfTerminal(TransactionCall.Reset);
                var state = State;
                if (state == TransactionState.InTransaction && _unit.Session.BrokenBy is null)
                {
                    throw _guards.Refusal(TransactionCall.Reset, state);
                }

                _orchestrator.Reset(state);
            }
            finally
            {
                _gate.Release();
            }
        }
        finally
        {
            _guards.Exit(explicitCall: true);
        }
    }

    public ValueTask DisposeAsync() => _disposal.DisposeAsync();

    public void Dispose() => _disposal.Dispose();
}
