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
    private readonly Dictionary<CancellationTokenSource, int> _sources = []; // the abandoned calls' token sources: how many calls still use each

    /// <summary>Abandons every call of the batch still running (processor thread).</summary>
    /// <returns>How many were abandoned.</returns>
    /// <param name="batch">The open batch, whose DI scopes the abandoned calls keep.</param>
    /// <param name="inFlight">The calls.</param>
    /// <param name="why">Why they were stopped, for the log and the refusal of a late write.</param>
    /// <param name="waited">How long they were waited for.</param>
    /// <param name="tokenSource">The source of the calls' token: each abandoned call keeps it until it ends.</param>
    public int Abandon<TKey, TValue>(OpenBatch<TKey, TValue>? batch, InFlight inFlight, string why, TimeSpan waited, CancellationTokenSource? tokenSource)
    {
        var now = time.GetTimestamp();
        var abandoned = 0;
        foreach (var call in inFlight.Calls.ToList())
        {
            if (!call.TryAbandon(() => batch?.DetachScope(call.Slot), tokenSource))
            {
                continue; // it ended meanwhile, and is among the completions already: collected as any other
            }

            // Before the abort: a write in progress finishes into the transaction that aborts, later ones are refused.
            call.Close($"it was abandoned, having ignored its cancellation for {waited.TotalMilliseconds:0} ms after {why}, and its transaction was aborted without it");
            inFlight.Abandoned(call);
            telemetry.HandlerCallAbandoned(call.Record.Key, time.GetElapsedTime(call.StartedAt, now), waited, why);
            abandoned++;
        }

        if (abandoned > 0 && tokenSource is not null)
        {
            _sources[tokenSource] = _sources.GetValueOrDefault(tokenSource) + abandoned;
        }

        return abandoned;
    }

    /// <summary>
    /// Which buffered records may be dispatched while calls are abandoned (null: any), the head of its lane being taken
    /// only if wanted. A record waiting in a lane an abandoned call holds cannot be handled before that call ends, and a
    /// batch commits only contiguous records: so a record of its partition past it is not dispatched either (its batch
    /// could not commit, and would abort at the barrier's bound), nor is one waiting in its lane behind such a record
    /// (a key's lane spans partitions), nor one of that record's partition past it, and so on: every record left
    /// dispatchable has the records of its partition below it dispatchable too, so the barrier can fill every hole.
    /// The rest of each partition, and every other partition, go on.
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

    /// <summary>Whether an abandoned call still uses the token source (the batch that ends must not dispose it then).</summary>
    public bool StillUse(CancellationTokenSource source) => _sources.ContainsKey(source);

    /// <summary>
    /// An abandoned call ended and was collected: its slot and lane are given back, and its token's source is disposed
    /// once no abandoned call uses it, unless it is still <paramref name="open"/>'s, the open batch's (processor thread).
    /// </summary>
    public void Ended(HandlerCall call, CancellationTokenSource? open)
    {
        telemetry.AbandonedCallEnded(call.Record.Key, time.GetElapsedTime(call.StartedAt), call.ScopeDisposeError);
        if (call.TokenSource is not { } source || !_sources.TryGetValue(source, out var running))
        {
            return;
        }

        if (running > 1)
        {
            _sources[source] = running - 1;
            return;
        }

        _sources.Remove(source);
        if (!ReferenceEquals(source, open))
        {
            source.Dispose(); // its batch has ended (else the batch's end disposes it)
        }
    }

    /// <summary>
    /// Per partition, the lowest offset that cannot be dispatched: waiting in a lane an abandoned call holds, or behind
    /// such a record in its lane (until nothing changes: each round can only lower an offset).
    /// </summary>
    private static Dictionary<TopicPartition, long> BlockedFrom(InFlight inFlight, LaneQueues buffer)
    {
        var blockedFrom = new Dictionary<TopicPartition, long>();
        foreach (var record in inFlight.AbandonedLanes.SelectMany(buffer.Waiting))
        {
            Block(blockedFrom, record);
        }

        for (var changed = blockedFrom.Count > 0; changed;)
        {
            changed = false;
            foreach (var lane in buffer.AllWaiting)
            {
                var blocked = false;
                foreach (var record in lane)
                {
                    blocked = blocked || (blockedFrom.TryGetValue(record.Key.TopicPartition, out var from) && record.Key.Offset >= from);
                    changed |= blocked && Block(blockedFrom, record);
                }
            }
        }

        return blockedFrom;
    }

    private static bool Block(Dictionary<TopicPartition, long> blockedFrom, BufferedRecord record)
    {
        if (blockedFrom.TryGetValue(record.Key.TopicPartition, out var lowest) && lowest <= record.Key.Offset)
        {
            return false;
        }

        blockedFrom[record.Key.TopicPartition] = record.Key.Offset;
        return true;
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
