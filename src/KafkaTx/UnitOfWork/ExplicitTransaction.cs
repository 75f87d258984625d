namespace KafkaTx.UnitOfWork;

/// <summary>
/// The explicit transaction: BeginTransaction takes the gate without waiting and its owner keeps it through its calls
/// (produce, send offsets, commit, abort) until the transaction ends. A commit whose outcome is unknown ends it too:
/// the next call settles that commit, whoever makes it. CommitAsync and AbortAsync also resume what another call left
/// (a commit with an unknown outcome, an abort that did not complete).
/// </summary>
internal sealed class ExplicitTransaction(UnitParts unit, TransactionOrchestrator orchestrator, SemaphoreSlim gate, CallGuards guards)
{
    /// <summary>Opens a transaction without waiting for the gate, which it keeps until the transaction ends.</summary>
    /// <param name="cancellation">The transaction's cancellation: a Produce waiting for room in the full local queue stops when it is cancelled.</param>
    public void Begin(CancellationToken cancellation)
    {
        guards.ThrowIfTerminal(TransactionCall.Begin);
        guards.Enter(TransactionCall.Begin);
        try
        {
            if (!gate.Wait(0, CancellationToken.None))
            {
                throw TransactionTransitions.Busy(unit.State, unit.TransactionalId);
            }

            try
            {
                var state = unit.State;
                if (state != TransactionState.Ready)
                {
                    throw guards.Refusal(TransactionCall.Begin, state);
                }

                orchestrator.Begin(cancellation);
                unit.Lifecycle.Own(TransactionOwner.Explicit);
            }
            catch
            {
                gate.Release();
                throw;
            }
        }
        finally
        {
            guards.Exit();
        }
    }

    public async Task CommitAsync(CancellationToken cancellationToken)
    {
        guards.ThrowIfOwnedByExecute(TransactionCall.Commit);
        guards.Enter(TransactionCall.Commit, explicitCall: true);
        try
        {
            var state = unit.State;
            var owner = unit.Lifecycle.Owner;
            if (state == TransactionState.InTransaction && owner == TransactionOwner.Explicit)
            {
                try
                {
                    (await orchestrator.CommitAsync(cancellationToken).ConfigureAwait(false)).ThrowIfNotCommitted();
                }
                finally
                {
                    ReleaseExplicitTransactionIfEnded();
                }

                return;
            }

            if (state == TransactionState.Committing && owner != TransactionOwner.Explicit)
            {
                await ResumePendingCommitAsync(cancellationToken).ConfigureAwait(false);
                return;
            }

            throw guards.Refusal(TransactionCall.Commit, state);
        }
        finally
        {
            guards.Exit(explicitCall: true);
        }
    }

    public async Task AbortAsync(CancellationToken cancellationToken)
    {
        guards.ThrowIfOwnedByExecute(TransactionCall.Abort);
        guards.Enter(TransactionCall.Abort, explicitCall: true);
        try
        {
            var state = unit.State;
            if ((state is TransactionState.InTransaction or TransactionState.Aborting) && unit.Lifecycle.Owner == TransactionOwner.Explicit)
            {
                try
                {
                    await orchestrator.AbortAsync("aborted by the caller", cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    ReleaseExplicitTransactionIfEnded();
                }

                return;
            }

            if (state == TransactionState.Aborting)
            {
                // Left by ExecuteAsync: resumed under the gate, unless another call settled it meanwhile.
                await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    if (unit.State == TransactionState.Aborting)
                    {
                        await orchestrator.AbortAsync("resuming an abort that did not complete earlier", cancellationToken).ConfigureAwait(false);
                    }
                }
                finally
                {
                    gate.Release();
                }

                return;
            }

            throw guards.Refusal(TransactionCall.Abort, state);
        }
        finally
        {
            guards.Exit(explicitCall: true);
        }
    }

    /// <summary>CommitAsync on a commit whose outcome was left unknown (by either path): resumes it and reports its outcome.</summary>
    private async Task ResumePendingCommitAsync(CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var state = unit.State;
            if (state != TransactionState.Committing)
            {
                throw TransactionTransitions.TerminalRefusal(nameof(ITransactionalUnitOfWork.CommitAsync), state, unit.TransactionalId, unit.Lifecycle.CauseOf(state))
                    ?? TransactionTransitions.InvalidState(nameof(ITransactionalUnitOfWork.CommitAsync), state, unit.TransactionalId, TransactionTransitions.SettledMeanwhile);
            }

            unit.Telemetry.SettlingPendingCommit(nameof(ITransactionalUnitOfWork.CommitAsync));
            (await orchestrator.CommitAsync(cancellationToken).ConfigureAwait(false)).ThrowIfNotCommitted();
            unit.Telemetry.PendingCommitSettled("committed (the resumed commit completed)");
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Ends the explicit transaction once a call has finished it: committed, aborted, or committed with an unknown
    /// outcome, which the next call settles (ExecuteAsync, InitializeAsync, CommitAsync or ResetAsync, not only its
    /// owner). An open transaction, or an abort that did not complete, stays with its owner.
    /// </summary>
    private void ReleaseExplicitTransactionIfEnded()
    {
        if (unit.Lifecycle.Owner == TransactionOwner.Explicit && unit.State is not (TransactionState.InTransaction or TransactionState.Aborting))
        {
            unit.Lifecycle.Disown();
            unit.Transaction.ForgetCancellation();
            gate.Release();
        }
    }
}
