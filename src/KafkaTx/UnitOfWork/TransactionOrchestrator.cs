using Confluent.Kafka;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// The only place that sequences the unit's I/O: initializing, beginning, producing, sending offsets, aborting,
/// settling a commit left unknown, replacing the producer, and entering a terminal state. Committing is
/// <see cref="CommitProtocol"/>'s. The caller holds the gate (Produce excepted) and has checked the state.
/// </summary>
internal sealed class TransactionOrchestrator
{
    private readonly UnitParts _unit;

    public TransactionOrchestrator(UnitParts unit)
    {
        _unit = unit;
        Commit = new CommitProtocol(unit, this);
        Writes = new TransactionWrites(unit, this);
    }

    public CommitProtocol Commit { get; }

    /// <summary>Produce and send offsets, inside the open transaction.</summary>
    public TransactionWrites Writes { get; }

    private TransactionLifecycle Lifecycle => _unit.Lifecycle;

    private UnitTelemetry Telemetry => _unit.Telemetry;

    // ---------------------------------------------------------------- initialize and begin

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        if (_unit.Session.BackoffBeforeInit is { } backoff && backoff > TimeSpan.Zero)
        {
            // A replaced producer: a fatal error that comes back at once should not spin.
            await Task.Delay(backoff, _unit.Time, cancellationToken).ConfigureAwait(false);
            _unit.Session.InitBackoffServed();
        }

        Telemetry.Initializing();
        var started = _unit.Time.GetTimestamp();
        Lifecycle.TransitionTo(TransactionState.Initializing);
        try
        {
            await _unit.Producer.InitTransactionsAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Lifecycle.TransitionTo(TransactionState.Uninitialized);
            throw;
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            if (kind == TransactionErrorKind.Retriable)
            {
                Lifecycle.TransitionTo(TransactionState.Uninitialized);
                throw Telemetry.Failed(_unit.Errors.InitTimedOut(e));
            }

            // A fresh producer that cannot initialize is not healed by another fresh producer.
            throw Terminate(kind, e, $"InitTransactions for transactional.id '{_unit.TransactionalId}' failed");
        }

        Lifecycle.TransitionTo(TransactionState.Ready);
        Telemetry.Initialized(_unit.Time.GetElapsedTime(started));
    }

    /// <summary>Initializes a replacement producer at once, so that the unit is ready again; a failure leaves the state to say what is next.</summary>
    public async Task InitializeReplacementAsync()
    {
        if (_unit.Calls.IsDisposing)
        {
            return; // the unit is being disposed: the new producer is closed with it, never initialized
        }

        try
        {
            await InitializeAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (KafkaTransactionException e)
        {
            // Uninitialized (the next use initializes), Fenced or Faulted: the caller still gets the original failure.
            Telemetry.ReplacementNotInitialized(Lifecycle.State, e);
        }
    }

    public void Begin(CancellationToken cancellation)
    {
        try
        {
            _unit.Producer.BeginTransaction();
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            if (kind == TransactionErrorKind.Fenced || (kind == TransactionErrorKind.Fatal && !_unit.Session.CanReplace(e.Error)))
            {
                throw Terminate(kind, e, "BeginTransaction failed");
            }

            if (kind == TransactionErrorKind.Fatal)
            {
                // librdkafka reports a fatal error raised in the background at the next call, often this one.
                ReplaceProducer(e.Error, "BeginTransaction");
                throw Telemetry.Failed(_unit.Errors.BeginFailedProducerReplaced(e));
            }

            throw Telemetry.Failed(_unit.Errors.BeginFailed(kind, e));
        }

        _unit.Transaction.Begin(cancellation);
        Lifecycle.TransitionTo(TransactionState.InTransaction);
        Telemetry.TransactionStarted();
    }

    // ---------------------------------------------------------------- ending a transaction

    public Task<CommitResult> CommitAsync(CancellationToken cancellationToken) => Commit.CommitAsync(cancellationToken);

    public async Task AbortAsync(string reason, CancellationToken cancellationToken)
    {
        _unit.Transaction.StopWrites(); // a ProduceAsync still serializing is refused from now on, never written after the abort
        Lifecycle.TransitionTo(TransactionState.Aborting);
        if (_unit.Session.BrokenBy is { } broken)
        {
            await AbortByReplacingProducerAsync(broken, reason).ConfigureAwait(false);
            return;
        }

        try
        {
            await _unit.Producer.AbortTransactionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException e)
        {
            var kind = TransactionErrorClassifier.Classify(e.Error);
            if (kind == TransactionErrorKind.Retriable)
            {
                throw Telemetry.Failed(_unit.Errors.AbortTimedOut(e));
            }

            if (kind == TransactionErrorKind.Fenced)
            {
                throw Terminate(kind, e, "AbortTransaction failed");
            }

            // librdkafka can fail an abort fatally (INVALID_TXN_STATE, confluentinc/librdkafka#4849; no KIP-360 epoch
            // bump on brokers before 2.5). A new producer's InitTransactions aborts the transaction just as well.
            await AbortByReplacingProducerAsync(e, reason).ConfigureAwait(false);
            return;
        }

        _unit.Producer.ClearFailures();
        _unit.Session.TransactionCompleted();
        Lifecycle.TransitionTo(TransactionState.Ready);
        Telemetry.Aborted(reason);
    }

    /// <summary>
    /// Ends the open transaction by replacing the producer: nothing of it can become visible, since the new producer's
    /// InitTransactions (run here) aborts it. Throws, entering Faulted, when the producer may not be replaced.
    /// </summary>
    private async Task AbortByReplacingProducerAsync(KafkaException cause, string reason)
    {
        if (!_unit.Session.CanReplace(cause.Error))
        {
            throw Terminate(TransactionErrorKind.Fatal, cause, "AbortTransaction failed");
        }

        ReplaceProducer(cause.Error, "AbortTransaction");
        Telemetry.Aborted(reason + " (by replacing the producer)");
        await InitializeReplacementAsync().ConfigureAwait(false);
    }

    /// <summary>Replaces the producer after a fatal error: Uninitialized until the new one initializes.</summary>
    public void ReplaceProducer(Error cause, string during)
    {
        _unit.Session.ReplaceAfterFatalError(cause, during);
        Lifecycle.TransitionTo(TransactionState.Uninitialized);
    }

    // ---------------------------------------------------------------- settling what an earlier call left

    /// <summary>
    /// Makes the unit ready for a new transaction: settles a commit whose outcome was left unknown, finishes an abort
    /// that timed out earlier, initializes the producer.
    /// </summary>
    public async Task PrepareForTransactionAsync(CancellationToken cancellationToken)
    {
        if (Lifecycle.State == TransactionState.Committing)
        {
            await SettlePendingCommitAsync(nameof(ITransactionalUnitOfWork.ExecuteAsync), cancellationToken).ConfigureAwait(false);
        }

        if (Lifecycle.State == TransactionState.Aborting)
        {
            await AbortAsync("resuming an abort that did not complete earlier", cancellationToken).ConfigureAwait(false);
        }

        if (Lifecycle.State == TransactionState.Uninitialized)
        {
            await InitializeAsync(cancellationToken).ConfigureAwait(false); // first use, or a replaced producer
        }

        var state = Lifecycle.State;
        if (state != TransactionState.Ready)
        {
            throw TransactionTransitions.TerminalRefusal(nameof(ITransactionalUnitOfWork.ExecuteAsync), state, _unit.TransactionalId, Lifecycle.CauseOf(state))
                ?? TransactionTransitions.InvalidState(nameof(ITransactionalUnitOfWork.ExecuteAsync), state, _unit.TransactionalId, TransactionTransitions.NextStep(state));
        }
    }

    /// <summary>
    /// Settles a commit whose outcome was left unknown (state Committing, no call running it): resumes it, and if its
    /// outcome is still unknown, replaces the producer, whose InitTransactions completes or aborts it. Leaves the unit
    /// Ready, or Uninitialized when the new producer could not initialize yet (the next call initializes it). Run by
    /// the next ExecuteAsync or InitializeAsync, so that nobody has to call anything else first.
    /// </summary>
    /// <remarks>The resumed commit ignores the caller's token, as any commit that was sent does; the new producer's
    /// InitTransactions honours it (cancelled, the unit stays Uninitialized and the next call initializes it).</remarks>
    public async Task SettlePendingCommitAsync(string operation, CancellationToken cancellationToken)
    {
        Telemetry.SettlingPendingCommit(operation);
        KafkaTransactionException failure;
        try
        {
            var result = await Commit.CommitAsync(CancellationToken.None).ConfigureAwait(false);
            if (result.IsCommitted)
            {
                Telemetry.PendingCommitSettled("committed (the resumed commit completed)");
                return;
            }

            result.ThrowIfNotCommitted();
            return; // unreachable: a commit that did not commit throws
        }
        catch (KafkaTransactionException e) when (e.Kind is not (TransactionErrorKind.Fenced or TransactionErrorKind.Fatal))
        {
            failure = e;
        }

        if (Lifecycle.State != TransactionState.Committing)
        {
            // The commit failed and was aborted, or a fatal error replaced the producer: settled either way.
            Telemetry.PendingCommitSettled(failure.Kind == TransactionErrorKind.OutcomeUnknown
                ? "completed or aborted by a new producer's InitTransactions after a fatal error"
                : $"aborted ({failure.Kind}: {failure.Error.Code})");
            return;
        }

        Telemetry.SettlingByReplacingProducer(failure);
        _unit.Session.ReplaceToSettle();
        Lifecycle.TransitionTo(TransactionState.Uninitialized);
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        Telemetry.PendingCommitSettled("completed or aborted by the new producer's InitTransactions (which of the two is not known)");
    }

    /// <summary>ResetAsync: a new producer, whatever the old one was doing; Uninitialized until it initializes.</summary>
    public void Reset(TransactionState state)
    {
        Telemetry.Resetting(state);
        Telemetry.SpanEnded("reset");
        _unit.Transaction.StopWrites();
        _unit.Session.ReplaceForReset();
        Lifecycle.ResetToUninitialized();
        Lifecycle.Disown();
        _unit.Transaction.ForgetCancellation();
    }

    // ---------------------------------------------------------------- terminal failures

    /// <summary>
    /// Moves to Fenced (disposing the producer) or Faulted, records it, and returns the exception to throw; its outcome
    /// is Unknown when the failure came after the commit was sent, otherwise nothing was committed.
    /// </summary>
    public KafkaTransactionException Terminate(TransactionErrorKind kind, KafkaException cause, string what, TransactionOutcome outcome = TransactionOutcome.NotCommitted)
    {
        if (cause is KafkaTransactionException existing && existing.Kind == kind && Lifecycle.State is TransactionState.Fenced or TransactionState.Faulted)
        {
            return existing;
        }

        _unit.Session.Ended();
        _unit.Transaction.StopWrites();
        KafkaTransactionException failure;
        if (kind == TransactionErrorKind.Fenced)
        {
            Lifecycle.End(TransactionState.Fenced, cause.Error);
            Telemetry.Fenced(cause);
            _unit.Producer.Dispose();
            failure = Telemetry.Failed(_unit.Errors.Fenced(what, cause, outcome));
            Telemetry.SpanEnded("fenced", error: failure);
            return failure;
        }

        Lifecycle.End(TransactionState.Faulted, cause.Error);
        Telemetry.Faulted(cause);
        failure = Telemetry.Failed(_unit.Errors.Faulted(what, cause, _unit.Session.ReplacementsInARow, outcome));
        Telemetry.SpanEnded("faulted", error: failure);
        return failure;
    }

    /// <summary>The transaction could not commit because records failed (it was aborted): the failure to report.</summary>
    public KafkaTransactionException DeliveryFailed(TransactionErrorKind kind, Error error, Exception? inner, List<DeliveryFailure> failures)
    {
        if (kind == TransactionErrorKind.Fenced || Lifecycle.State is TransactionState.Faulted or TransactionState.Fenced)
        {
            // A record failed because the producer itself is finished (e.g. fenced by a newer epoch).
            var terminal = Terminate(kind == TransactionErrorKind.Fenced ? kind : TransactionErrorKind.Fatal, inner as KafkaException ?? new KafkaException(error), "A record of the transaction failed");
            return _unit.Errors.WithDeliveries(terminal, inner, failures);
        }

        // A record that failed with a fatal error (a lost sequence, say) broke the producer, which the abort replaced:
        // for the caller the transaction simply failed.
        return Telemetry.Failed(_unit.Errors.DeliveryFailed(kind == TransactionErrorKind.Fatal ? TransactionErrorKind.Abortable : kind, error, inner, failures));
    }
}
