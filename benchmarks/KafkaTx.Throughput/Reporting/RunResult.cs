namespace KafkaTx.Throughput.Reporting;

/// <summary>What one run of one mode measured.</summary>
internal sealed record RunResult(string Mode, long Records, TimeSpan Elapsed, IReadOnlyList<double> CommitLatenciesMs, long AllocatedBytes, int RecordSize)
{
    public double RecordsPerSecond => Records / Elapsed.TotalSeconds;

    public double MegabytesPerSecond => RecordsPerSecond * RecordSize / (1024 * 1024);

    public double? CommitP50 => Percentile(0.50);

    public double? CommitP99 => Percentile(0.99);

    public double AllocatedPerRecord => Records == 0 ? 0 : (double)AllocatedBytes / Records;

    private double? Percentile(double p)
    {
        if (CommitLatenciesMs.Count == 0)
        {
            return null;
        }

        var sorted = CommitLatenciesMs.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    }
}

/// <summary>Times a run and counts what it allocated (every thread: the client's own threads included).</summary>
internal sealed class RunMeter
{
    private readonly List<double> _commits = [];
    private long _started;
    private long _allocatedAtStart;

    public void Start()
    {
        _allocatedAtStart = GC.GetTotalAllocatedBytes(precise: false);
        _started = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    public bool Started => _started != 0;

    public TimeSpan Elapsed => System.Diagnostics.Stopwatch.GetElapsedTime(_started);

    public void Commit(long commitStarted) => _commits.Add(System.Diagnostics.Stopwatch.GetElapsedTime(commitStarted).TotalMilliseconds);

    public RunResult Finish(string mode, long records, int recordSize, IReadOnlyList<double>? commitLatencies = null) =>
        new(mode, records, Elapsed, commitLatencies ?? _commits, GC.GetTotalAllocatedBytes(precise: false) - _allocatedAtStart, recordSize);
}
