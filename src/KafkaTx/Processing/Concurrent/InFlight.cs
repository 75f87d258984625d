using System.Collections.Concurrent;

namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// The handler calls running: the open batch's, the abandoned ones (calls that ignored their cancellation and whose
/// batch ended without them: their slot and lane stay taken until they end), and the completions they report. Handler
/// calls run on the thread pool and only enqueue themselves when they end; the processor's thread collects them
/// (<see cref="TryCollect"/>), so that the batch, the lanes and the attempts are changed by one thread only.
/// </summary>
/// <remarks>
/// Calls are tracked as calls, not by record: a record read again by a rewind while an abandoned call of it still runs
/// is another call (it waits in the lane the abandoned one holds).
/// </remarks>
internal sealed class InFlight
{
    private readonly ConcurrentQueue<HandlerCall> _completed = new();
    private readonly Lock _lock = new();
    private TaskCompletionSource? _waiter; // the processor's wait for the next completion, if it waits
    private readonly HashSet<HandlerCall> _calls = [];      // the open batch's calls running
    private readonly HashSet<HandlerCall> _abandoned = [];  // abandoned calls still running
    private int _running;
    private int _abandonedRunning;

    /// <summary>The open batch's calls started and not collected yet (read from any thread, for the gauge).</summary>
    public int Count => Volatile.Read(ref _running);

    /// <summary>Abandoned calls that have not ended yet (read from any thread, for the gauge).</summary>
    public int AbandonedCount => Volatile.Read(ref _abandonedRunning);

    /// <summary>The open batch's calls running (processor thread).</summary>
    public IReadOnlyCollection<HandlerCall> Calls => _calls;

    /// <summary>The lanes held by a call, the batch's or an abandoned one (processor thread).</summary>
    public IEnumerable<LaneId> Lanes => _calls.Concat(_abandoned).Select(c => c.Record.Lane);

    /// <summary>The lanes held by abandoned calls (processor thread).</summary>
    public IEnumerable<LaneId> AbandonedLanes => _abandoned.Select(c => c.Record.Lane);

    /// <summary>A handler call starts (processor thread).</summary>
    public void Started(HandlerCall call)
    {
        _calls.Add(call);
        Interlocked.Increment(ref _running);
    }

    /// <summary>The call is abandoned: it no longer counts as the batch's (processor thread).</summary>
    public void Abandoned(HandlerCall call)
    {
        if (_calls.Remove(call))
        {
            _abandoned.Add(call);
            Interlocked.Decrement(ref _running);
            Interlocked.Increment(ref _abandonedRunning);
        }
    }

    /// <summary>A handler call ended (any thread).</summary>
    public void Completed(HandlerCall call)
    {
        _completed.Enqueue(call);
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            waiter = _waiter;
            _waiter = null;
        }

        waiter?.TrySetResult();
    }

    /// <summary>Takes one call that ended since the last call (processor thread).</summary>
    public bool TryCollect(out HandlerCall call)
    {
        if (!_completed.TryDequeue(out call!))
        {
            return false;
        }

        if (_abandoned.Remove(call))
        {
            Interlocked.Decrement(ref _abandonedRunning);
        }
        else if (_calls.Remove(call))
        {
            Interlocked.Decrement(ref _running);
        }

        return true;
    }

    /// <summary>Waits until a completion is reported or the timeout passes (a completion not collected yet returns at once).</summary>
    public async Task WaitAsync(TimeSpan timeout)
    {
        if (!_completed.IsEmpty || timeout <= TimeSpan.Zero)
        {
            return;
        }

        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _waiter = waiter;
        }

        if (!_completed.IsEmpty)
        {
            return; // completed before the waiter was in place
        }

        // Back on the caller's context: the processor's thread, or none in a rebalance callback. A timeout is no error.
        await waiter.Task.WaitAsync(timeout).ConfigureAwait(ConfigureAwaitOptions.ContinueOnCapturedContext | ConfigureAwaitOptions.SuppressThrowing);
    }
}
