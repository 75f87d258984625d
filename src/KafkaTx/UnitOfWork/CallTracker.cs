namespace KafkaTx.UnitOfWork;

/// <summary>
/// The calls running on a unit, for its disposal: every public call but Produce counts itself while it runs, the
/// explicit calls of one transaction (commit, abort, send offsets, reset) run one at a time, and once disposal has begun
/// every new call is refused and the end of the last one in flight is signalled.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The idle event lives as long as the unit, as it did before the split; a wait on it may outlive the unit's disposal.")]
internal sealed class CallTracker
{
    private int _callsInFlight;
    private string? _explicitCall;
    private int _disposeStarted;
    private int _disposing;
    private TaskCompletionSource? _idle;
    private ManualResetEventSlim? _idleEvent;

    public int InFlight => Volatile.Read(ref _callsInFlight);

    public bool IsDisposing => Volatile.Read(ref _disposing) == 1;

    /// <summary>
    /// Counts a call as in flight. Returns the explicit call already running when this one is explicit too (it is then
    /// not counted), and sets <paramref name="disposing"/> when disposal has begun (the call is then not counted either).
    /// </summary>
    public string? TryEnter(string operation, bool explicitCall, out bool disposing)
    {
        disposing = false;
        if (explicitCall && Interlocked.CompareExchange(ref _explicitCall, operation, null) is { } running)
        {
            return running;
        }

        Interlocked.Increment(ref _callsInFlight);
        if (Volatile.Read(ref _disposing) == 1)
        {
            Exit(explicitCall);
            disposing = true;
        }

        return null;
    }

    public void Exit(bool explicitCall = false)
    {
        if (explicitCall)
        {
            Volatile.Write(ref _explicitCall, null);
        }

        if (Interlocked.Decrement(ref _callsInFlight) == 0 && Volatile.Read(ref _disposing) == 1)
        {
            _idle!.TrySetResult();
            _idleEvent!.Set();
        }
    }

    /// <summary>
    /// Starts disposal, once: from now on every new call is refused and the end of the last call in flight is signalled.
    /// Returns false when disposal had already started.
    /// </summary>
    public bool BeginDispose()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) == 1)
        {
            return false;
        }

        _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _idleEvent = new ManualResetEventSlim();

        // After the signals exist (a call ending now finds them) and before the count is read: TryEnter increments
        // the count before it reads this flag, so either disposal sees the call or the call sees disposal.
        Interlocked.Exchange(ref _disposing, 1);
        return true;
    }

    /// <summary>Completes when no call is in flight any more (only after <see cref="BeginDispose"/>).</summary>
    public Task Idle => _idle!.Task;

    /// <summary>Waits, blocking, for no call to be in flight (only after <see cref="BeginDispose"/>).</summary>
    public bool WaitIdle(TimeSpan bound) => _idleEvent!.Wait(bound);
}
