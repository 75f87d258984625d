namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// The commit barrier of a batch handled concurrently. Before its offsets are sent, every record the batch dispatched
/// must be handled, and every partition's handled records must be contiguous from the batch's first: a record
/// dispatched past one still waiting in its lane (another key's, in key order) would otherwise commit its output while
/// the offsets stop below the waiting one, and be handled again after a restart. So the barrier dispatches those
/// holes (and nothing else new), waits for the calls in flight, and only then lets the batch commit.
/// </summary>
/// <remarks>Runs on the processor's thread (or while it is blocked in a rebalance callback waiting for it).</remarks>
internal sealed class CommitBarrier<TKey, TValue>(
    KafkaTransactionsOptions producer,
    BatchTransactions<TKey, TValue> transactions,
    HandlerDispatch<TKey, TValue> dispatch,
    LaneQueues buffer,
    ProcessorTelemetry telemetry,
    TimeProvider time)
{
    /// <summary>
    /// The commit barrier: dispatches the holes (buffered records below a dispatched record of their partition), waits
    /// for every call in flight, for at most <paramref name="bound"/> (or until <paramref name="drainToken"/> is
    /// cancelled, which cancels the calls), after which the calls are cancelled, waited for at most ShutdownTimeout
    /// more, and abandoned if they still run.
    /// </summary>
    /// <param name="bound">How long the calls may take.</param>
    /// <param name="chargeOverrun">Whether the calls still running at the bound are charged an attempt.</param>
    /// <param name="why">Why the wait is bounded, for the log of a call abandoned at the bound.</param>
    /// <param name="drainToken">The calls' token, when the barrier dispatches holes.</param>
    /// <returns>Whether every record the batch dispatched is handled, and none is missing below them.</returns>
    public async Task<bool> WaitAsync(TimeSpan bound, bool chargeOverrun, string why, CancellationToken drainToken)
    {
        var started = time.GetTimestamp();
        var batch = transactions.Batch;
        while (true)
        {
            dispatch.Collect(batch);
            while (batch is not null && !dispatch.Broken && dispatch.HasFreeSlot && buffer.TryTakeToward(dispatch.IsHole, out var hole))
            {
                dispatch.Dispatch(batch, hole, drainToken);
            }

            if (dispatch.Broken && dispatch.InFlight.Count == 0)
            {
                return false;
            }

            // A hole waiting behind an abandoned call (it should not happen: records past it are not dispatched)
            // keeps the batch from completing, as a call in flight does.
            var holeBlocked = dispatch.InFlight.Count == 0 && AbandonedCalls.HoleBlocked(dispatch.InFlight, buffer, dispatch.IsHole);
            if (dispatch.InFlight.Count == 0 && !holeBlocked)
            {
                telemetry.BarrierWaited(time.GetElapsedTime(started));
                return true;
            }

            var remaining = bound == TimeSpan.MaxValue ? BatchSchedule.IdlePoll : bound - time.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero || dispatch.Broken || drainToken.IsCancellationRequested)
            {
                if (remaining <= TimeSpan.Zero && chargeOverrun)
                {
                    dispatch.Collect(batch); // a call that ended since the loop's collect is not charged for overrunning
                    dispatch.Overran(producer.TransactionTimeout);
                }

                // Overran, or the batch aborts anyway: no use letting the others finish. A call that ignores its token
                // is not waited for beyond the bound: it is abandoned, and the batch aborts without it.
                var stoppedBecause = remaining <= TimeSpan.Zero ? why : dispatch.Broken ? "a call of its batch failed" : "the processor stopped";
                await dispatch.StopCallsAsync(batch, stoppedBecause).ConfigureAwait(true);
                if (holeBlocked)
                {
                    dispatch.MarkIncomplete();
                }

                return false;
            }

            await dispatch.InFlight.WaitAsync(remaining < BatchSchedule.IdlePoll ? remaining : BatchSchedule.IdlePoll).ConfigureAwait(true);
        }
    }
}
