using Confluent.Kafka;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// Disposing a unit: new calls are refused at once, the call in flight is waited for (at most CommitTimeout +
/// AbortTimeout) so that nothing is aborted or closed under it, then an open transaction is aborted and the producer
/// closed. Every call queued for the gate wakes up, finds the unit disposed, and throws.
/// </summary>
internal sealed class UnitDisposal(UnitParts unit, TransactionOrchestrator orchestrator, SemaphoreSlim gate)
{
    /// <summary>How long disposal waits for the call in flight: a commit and then an abort, each to its deadline.</summary>
    private TimeSpan WaitBound => unit.Options.CommitTimeout + unit.Options.AbortTimeout;

    private bool OpenTransactionToAbort => (unit.State is TransactionState.InTransaction or TransactionState.Aborting) && unit.Session.BrokenBy is null;

    public async ValueTask DisposeAsync()
    {
        if (!Begin())
        {
            return;
        }

        var bound = WaitBound;
        if (unit.Calls.InFlight > 0)
        {
            unit.Telemetry.DisposeWaiting(bound);
            try
            {
                await unit.Calls.Idle.WaitAsync(bound, unit.Time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                GiveUpWaiting(bound);
                return;
            }
        }

        var ownsGate = unit.Lifecycle.Owner == TransactionOwner.Explicit || await gate.WaitAsync(unit.Options.AbortTimeout).ConfigureAwait(false);
        try
        {
            if (OpenTransactionToAbort)
            {
                unit.Telemetry.DisposingOpenTransaction();
                try
                {
                    await orchestrator.AbortAsync("the unit of work was disposed", CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is KafkaException or OperationCanceledException)
                {
                    unit.Telemetry.DisposeAbortFailed(e);
                }
            }
        }
        finally
        {
            Finish(ownsGate);
        }
    }

    public void Dispose()
    {
        if (!Begin())
        {
            return;
        }

        var bound = WaitBound;
        if (unit.Calls.InFlight > 0)
        {
            unit.Telemetry.DisposeWaiting(bound);
            if (!unit.Calls.WaitIdle(bound))
            {
                GiveUpWaiting(bound);
                return;
            }
        }

        var ownsGate = unit.Lifecycle.Owner == TransactionOwner.Explicit || gate.Wait(unit.Options.AbortTimeout);
        try
        {
            if (OpenTransactionToAbort)
            {
                unit.Telemetry.DisposingOpenTransaction();
                try
                {
                    // librdkafka's abort is itself a blocking call: for the synchronous Dispose this is not sync-over-async.
                    unit.Producer.AbortTransactionNow();
                }
                catch (KafkaException e)
                {
                    unit.Telemetry.DisposeAbortFailed(e);
                }
            }
        }
        finally
        {
            Finish(ownsGate);
        }
    }

    /// <summary>Starts disposing, once; false when disposal had already started. A Produce waiting for queue room stops.</summary>
    private bool Begin()
    {
        if (!unit.Calls.BeginDispose())
        {
            return false;
        }

        unit.Producer.StopWaiting();
        return true;
    }

    /// <summary>
    /// The call in flight outlasted the bounded wait: the unit is Disposed now (every call refused), and the rest of
    /// the disposal (its producer, the transaction gate) happens when that call returns. Its open transaction is not
    /// aborted: the broker aborts it after transaction.timeout.ms, or a new producer with this id at once.
    /// </summary>
    private void GiveUpWaiting(TimeSpan bound)
    {
        unit.Telemetry.DisposeGaveUpWaiting(bound);
        unit.Lifecycle.EnterDisposed();
        _ = unit.Calls.Idle.ContinueWith(
            static (_, state) =>
            {
                // Every call has returned: an explicit transaction still holds the gate only if no call ended it.
                ((UnitDisposal)state!).FinishAfterCalls();
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.None,
            TaskScheduler.Default);
    }

    private void FinishAfterCalls() => Finish(unit.Lifecycle.Owner == TransactionOwner.Explicit);

    private void Finish(bool ownsGate)
    {
        // A producer broken mid-transaction is dropped without an abort: the broker aborts its transaction after
        // transaction.timeout.ms, or at once when the next instance with this transactional.id initializes.
        unit.Transaction.StopWrites(); // a ProduceAsync still serializing is refused, never handed to the disposed producer
        unit.Lifecycle.EnterDisposed();
        unit.Telemetry.SpanEnded("disposed");
        unit.Producer.Dispose();
        unit.Lifecycle.Disown();
        if (ownsGate)
        {
            // Wake queued callers: they find the unit disposed and throw.
            gate.Release();
        }
    }
}
