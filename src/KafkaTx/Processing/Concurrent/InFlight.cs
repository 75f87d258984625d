using System.Collections.Concurrent;

namespace KafkaTx.Processing.Concurrent;

/// <summary>How a handler call ended: <see cref="Error"/> null when it completed.</summary>
/// <param name="Record">The record handled.</param>
/// <param name="Slot">The handler slot it ran in.</param>
/// <param name="Error">What it threw, or null.</param>
/// <param name="Cancelled">Whether the batch's token had been cancelled when it threw: then the record is not at fault.</param>
internal sealed record Completion(BufferedRecord Record, int Slot, Exception? Error, bool Cancelled);

/// <summary>
/// The handler calls running: how many, which lanes they hold, and the completions they report. Handler calls run on
/// the thread pool and only enqueue their completion; the processor's thread collects them (<see cref="TryCollect"/>),
/// so that the batch, the lanes and the attempts are changed by one thread only.
/// </summary>
internal sealed class InFlight
{
    private readonly ConcurrentQueue<Completion> _completed = new();
    private readonly Lock _lock = new();
    private TaskCompletionSource? _waiter; // the processor's wait for the next completion, if it waits
    private readonly Dictionary<BufferedRecord, long> _records = []; // record -> when its call started
    private int _running;

    /// <summary>Handler calls started and not collected yet (read from any thread, for the gauge).</summary>
    public int Count => Volatile.Read(ref _running);

    /// <summary>The records of the calls running.</summary>
    public IReadOnlyCollection<BufferedRecord> Records => _records.Keys;

    /// <summary>When the call handling <paramref name="record"/> started (a TimeProvider timestamp; processor thread).</summary>
    public long StartedAt(BufferedRecord record) => _records[record];

    /// <summary>A handler call starts (processor thread).</summary>
    public void Started(BufferedRecord record, long startedAt)
    {
        _records[record] = startedAt; // a set, as before: a record started again before its completion was collected stays one entry
        Interlocked.Increment(ref _running);
    }

    /// <summary>A handler call ended (any thread).</summary>
    public void Completed(Completion completion)
    {
        _completed.Enqueue(completion);
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            waiter = _waiter;
            _waiter = null;
        }

        waiter?.TrySetResult();
    }

    /// <summary>Takes one completion reported since the last call (processor thread).</summary>
    public bool TryCollect(out Completion completion)
    {
        if (!_completed.TryDequeue(out completion!))
        {
            return false;
        }

        Interlocked.Decrement(ref _running);
        _records.Remove(completion.Record);
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
