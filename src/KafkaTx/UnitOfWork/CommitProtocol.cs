using Confluent.Kafka;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// Committing a transaction, and what each way a commit can fail means. Every failure ends in one of four outcomes
/// (<see cref="CommitResult"/>): committed; aborted (nothing visible; the work may run again unless the kind says
/// otherwise); outcome unknown (not treated as committed, nor run again); terminal (Fenced or Faulted).
/// </summary>
/// <remarks>
/// <para>Before the commit is sent, a transaction that cannot commit is aborted instead: one older than the transaction
/// timeout, one whose producer hit a fatal error, one with a record Kafka refused.</para>
/// <para><b>A commit that fails fatally</b> (not fencing): if the producer may be replaced (not an authorization failure,
/// and fewer than MaxProducerReplacements replacements in a row), it is, and the new producer is initialized at once,
/// its InitTransactions completing or aborting the transaction. A refused record means the commit cannot have taken
/// effect: Aborted (Abortable, with the failed records). Otherwise the commit request may have reached the coordinator:
/// Unknown (OutcomeUnknown; the unit is usable). If the producer may not be replaced: Terminal (Faulted). Fencing is
/// always Terminal (Fenced).</para>
/// <para>A commit that was sent runs to its outcome within CommitTimeout: ExecuteAsync and settlement pass no token.
/// The explicit CommitAsync passes its caller's, which may stop waiting: the unit stays Committing, outcome unknown,
/// and the next call settles it.</para>
/// </remarks>
internal sealed class CommitProtocol(UnitParts unit, TransactionOrchestrator orchestrator)
{
    private int _failedInARow;

    /// <summary>Commits that failed since one last succeeded (for health checks).</summary>
    public int FailedInARow => Volatile.Read(ref _failedInARow);

    /// <summary>Commits the open transaction (InTransaction), or resumes a commit whose outcome is unknown (Committing).</summary>
    /// <exception cref="KafkaTransactionException">An abort instead of the commit failed (its own failure).</exception>
    /// <exception cref="OperationCanceledException">Cancelled before the commit was sent: the transaction stays open.</exception>
    public async Task<CommitResult> CommitAsync(CancellationToken cancellationToken)
    {
        // One method, not a counting wrapper around another: an async layer costs an allocation per transaction.
        try
        {
            var commitStarted = unit.Time.GetTimestamp();
            var state = unit.State;
            if (state == TransactionState.InTransaction)
            {
                if (await AbortIfDoomedAsync().ConfigureAwait(false) is { } refused)
                {
                    return Counted(refused);
                }

                // Cancellation is honoured up to here: nothing has been sent, and the transaction stays open.
                if (cancellationToken.IsCancellationRequested)
                {
                    unit.Transaction.ResumeWrites(unit.Transaction.Number);
                    cancellationToken.ThrowIfCancellationRequested();
                }

                unit.Lifecycle.TransitionTo(TransactionState.Committing);
            }
            else if (state != TransactionState.Committing)
            {
                throw TransactionTransitions.Refusal(TransactionCall.Commit, state, unit.TransactionalId, unit.Lifecycle.CauseOf(state));
            }

            var records = unit.Transaction.Records;
            try
            {
                await unit.Producer.CommitTransactionAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException e)
            {
                // Only the explicit CommitAsync gets here: Committing, with an unknown outcome the next call settles.
                unit.Telemetry.CommitOutcomeUnknown(e);
                unit.Telemetry.SpanEnded("outcome_unknown", error: e);
                return Counted(new CommitResult(CommitOutcome.Unknown, Cancelled: e));
            }
            catch (KafkaException e)
            {
                unit.Telemetry.Error(e);
                var failed = await FailedAsync(e).ConfigureAwait(false);
                unit.Telemetry.SpanEnded(failed.Outcome == CommitOutcome.Unknown ? "outcome_unknown" : "aborted", error: failed.Failure);
                return Counted(failed);
            }

            unit.Lifecycle.TransitionTo(TransactionState.Ready);
            unit.Session.TransactionCompleted();
            unit.Telemetry.Committed(records, unit.Time.GetElapsedTime(commitStarted));
            return Counted(CommitResult.Committed);
        }
        catch (KafkaTransactionException)
        {
            Interlocked.Increment(ref _failedInARow);
            throw;
        }
    }

    /// <summary>Counts a result for <see cref="FailedInARow"/>: a commit resets it, a reported failure adds one.</summary>
    private CommitResult Counted(CommitResult result)
    {
        if (result.IsCommitted)
        {
            Volatile.Write(ref _failedInARow, 0);
        }
        else if (result.Failure is not null)
        {
            Interlocked.Increment(ref _failedInARow);
        }

        return result;
    }

    /// <summary>Aborts, instead of committing, a transaction that cannot commit; returns what the caller is told, or null.</summary>
    private async Task<CommitResult?> AbortIfDoomedAsync()
    {
        if (unit.Transaction.IsTooLateToCommit(out var age))
        {
            unit.Telemetry.TransactionExpired(age, unit.Options.TransactionTimeout);
            await orchestrator.AbortAsync("too close to transaction.timeout.ms to commit", CancellationToken.None).ConfigureAwait(false);
            return Aborted(unit.Telemetry.Failed(unit.Errors.ExpiredAtCommit(age)));
        }

        if (unit.Session.BrokenBy is { } broken)
        {
            await orchestrator.AbortAsync("the producer hit a fatal error", CancellationToken.None).ConfigureAwait(false);
            return Aborted(unit.Telemetry.Failed(unit.Errors.BrokenAtCommit(broken)));
        }

        // A ProduceAsync not awaited (or refused after its handler call returned) would be missing from the commit. When
        // none is in flight, ProduceAsync's writes stop here, atomically with the check: none can enter the transaction now.
        if (!unit.Transaction.TryStopWritesForCommit(out var inFlight, out var refusedLate))
        {
            await orchestrator.AbortAsync("a ProduceAsync was not awaited", CancellationToken.None).ConfigureAwait(false);
            return Aborted(unit.Telemetry.Failed(unit.Errors.WritesNotFinishedAtCommit(inFlight, refusedLate)));
        }

        var early = unit.Producer.SnapshotFailures();
        if (early.Count > 0)
        {
            var error = early[0].Error;
            unit.Telemetry.Error(error);
            await orchestrator.AbortAsync("a record was not delivered", CancellationToken.None).ConfigureAwait(false);
            return Aborted(orchestrator.DeliveryFailed(TransactionErrors.KindOf(early), error, null, early));
        }

        return null;
    }

    /// <summary>What a failed CommitTransaction means, after whatever it requires (abort, replacement) is done.</summary>
    private async Task<CommitResult> FailedAsync(KafkaException e)
    {
        var kind = TransactionErrorClassifier.Classify(e.Error);
        switch (kind)
        {
            case TransactionErrorKind.Retriable:
                unit.Telemetry.CommitOutcomeUnknown(e);
                return new CommitResult(CommitOutcome.Unknown, unit.Telemetry.Failed(unit.Errors.CommitTimedOut(e)));
            case TransactionErrorKind.Fenced:
            case TransactionErrorKind.Fatal when !unit.Session.CanReplace(e.Error):
                // The commit was sent: fenced or broken after it, it may have taken effect.
                return new CommitResult(CommitOutcome.Terminal, orchestrator.Terminate(kind, e, "CommitTransaction failed", TransactionOutcome.Unknown));
            case TransactionErrorKind.Fatal:
                var refused = await unit.Producer.CollectFailuresAsync().ConfigureAwait(false);
                orchestrator.ReplaceProducer(e.Error, "CommitTransaction");
                await orchestrator.InitializeReplacementAsync().ConfigureAwait(false);
                if (refused.Count > 0 || TransactionErrorClassifier.RequiresNewProducer(e.Error.Code))
                {
                    // A record was refused, or the coordinator no longer knew the producer id (INVALID_PRODUCER_ID_MAPPING),
                    // so the commit cannot have taken effect: the new producer aborted it, and the work may run again.
                    return Aborted(orchestrator.DeliveryFailed(refused.Count > 0 ? TransactionErrors.KindOf(refused) : kind, e.Error, e, refused));
                }

                // The commit request may have reached the coordinator before the error (a retried EndTxn, say).
                unit.Telemetry.CommitOutcomeUnknown(e);
                return new CommitResult(CommitOutcome.Unknown, unit.Telemetry.Failed(unit.Errors.CommitFatalAfterSent(e)));
            default:
                var failures = await unit.Producer.CollectFailuresAsync().ConfigureAwait(false);
                await orchestrator.AbortAsync($"the commit failed with {e.Error.Code}", CancellationToken.None).ConfigureAwait(false);
                return Aborted(orchestrator.DeliveryFailed(failures.Count > 0 ? TransactionErrors.Worst(kind, TransactionErrors.KindOf(failures)) : kind, e.Error, e, failures));
        }
    }

    /// <summary>Aborted, or terminal when the failure made the unit Fenced or Faulted (a record failed because the producer itself is finished).</summary>
    private static CommitResult Aborted(KafkaTransactionException failure) =>
        new(failure.Kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal ? CommitOutcome.Terminal : CommitOutcome.Aborted, failure);
}
