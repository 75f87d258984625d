using Confluent.Kafka;

namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// Handler calls that ignored their cancellation for longer than the bound they were given (a revoke's, a loss's, a
/// stop's, a failed batch's). They are abandoned rather than awaited for ever: their writes are refused from then on,
/// their batch aborts without them, and until they end their slot stays out of use, their DI scope undisposed and their
/// lane blocked, so that no later record of their key (their partition, in partition order; their record, read again
/// after the rewind, unordered) runs before they end.
/// </summary>
internal sealed class AbandonedCalls(ProcessorTelemetry telemetry, TimeProvider time)
{
    /// <summary>Abandons every call of the batch still running (processor thread).</summary>
    /// <returns>How many were abandoned.</returns>
    public int Abandon<TKey, TValue>(OpenBatch<TKey, TValue>? batch, InFlight inFlight, string why, TimeSpan waited)
    {
        var now = time.GetTimestamp();
        var abandoned = 0;
        foreach (var call in inFlight.Calls.ToList())
        {
            if (!call.TryAbandon(() => batch?.DetachScope(call.Slot)))
            {
                continue; // it ended meanwhile: collected as any other
            }

            // Before the abort: a write in progress finishes into the transaction that aborts, later ones are refused.
            call.Close($"it was abandoned, having ignored its cancellation for {waited.TotalMilliseconds:0} ms after {why}, and its transaction was aborted without it");
            inFlight.Abandoned(call);
            telemetry.HandlerCallAbandoned(call.Record.Key, time.GetElapsedTime(call.StartedAt, now), waited, why);
            abandoned++;
        }

        return abandoned;
    }

    /// <summary>
    /// Which buffered records may be dispatched while calls are abandoned (null: any). A record waiting in a lane an
    /// abandoned call holds cannot be handled before that call ends, and a batch commits only contiguous records: so a
    /// record of its partition past it is not dispatched either (its batch could not commit, and would abort at the
    /// barrier's bound). The rest of the partition, and every other partition, go on.
    /// </summary>
    public static Func<BufferedRecord, bool>? Dispatchable(InFlight inFlight, LaneQueues buffer)
    {
        if (inFlight.AbandonedCount == 0)
        {
            return null;
        }

        var blockedFrom = BlockedFrom(inFlight, buffer);
        return blockedFrom.Count == 0 ? null : r => !blockedFrom.TryGetValue(r.Key.TopicPartition, out var from) || r.Key.Offset < from;
    }

    /// <summary>Whether a record the barrier must dispatch (<paramref name="isHole"/>) waits behind an abandoned call.</summary>
    public static bool HoleBlocked(InFlight inFlight, LaneQueues buffer, Func<BufferedRecord, bool> isHole) =>
        inFlight.AbandonedCount > 0 && inFlight.AbandonedLanes.Any(lane => buffer.Waiting(lane).Any(isHole));

    /// <summary>An abandoned call ended and was collected: its slot and lane are given back (processor thread).</summary>
    public void Ended(HandlerCall call) =>
        telemetry.AbandonedCallEnded(call.Record.Key, time.GetElapsedTime(call.StartedAt), call.ScopeDisposeError);

    /// <summary>Per partition, the lowest offset waiting in a lane an abandoned call holds.</summary>
    private static Dictionary<TopicPartition, long> BlockedFrom(InFlight inFlight, LaneQueues buffer)
    {
        var blockedFrom = new Dictionary<TopicPartition, long>();
        foreach (var record in inFlight.AbandonedLanes.SelectMany(buffer.Waiting))
        {
            if (!blockedFrom.TryGetValue(record.Key.TopicPartition, out var lowest) || record.Key.Offset < lowest)
            {
                blockedFrom[record.Key.TopicPartition] = record.Key.Offset;
            }
        }

        return blockedFrom;
    }

    /// <summary>Disposes the DI scope an abandoned call used, once it has ended (on the call's thread).</summary>
    public static async Task<Exception?> DisposeScopeAsync(IAsyncDisposable scope)
    {
        try
        {
            await scope.DisposeAsync().ConfigureAwait(false);
            return null;
        }
        catch (Exception e)
        {
            return e; // user code (a scoped service's Dispose): reported when the call is collected
        }
    }
}
