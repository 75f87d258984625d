namespace KafkaTx.Throughput;

/// <summary>
/// One configuration measured: how transactions end (after a number of records, or a commit interval), the record
/// size, and how much each run writes: <see cref="Records"/>, or as many as fit in <see cref="Deadline"/>.
/// </summary>
internal sealed record Workload(int? RecordsPerTransaction, TimeSpan? CommitInterval, int RecordSize, int Records, TimeSpan Deadline, int Partitions, int LingerMs = 20)
{
    public string Shape => RecordsPerTransaction is { } n ? $"{n} per transaction" : $"commit every {CommitInterval!.Value.TotalMilliseconds:F0} ms";

    /// <summary>Whether a transaction holding <paramref name="records"/> records, begun at <paramref name="startedAt"/>, should commit now.</summary>
    public bool IsFull(int records, long startedAt) =>
        RecordsPerTransaction is { } n ? records >= n : System.Diagnostics.Stopwatch.GetElapsedTime(startedAt) >= CommitInterval!.Value;

    /// <summary>The processor's batch settings for this workload: by count only, or by time only.</summary>
    public (int MaxBatchSize, TimeSpan MaxBatchDuration) Batching =>
        RecordsPerTransaction is { } n ? (n, TimeSpan.FromSeconds(20)) : (1_000_000, CommitInterval!.Value);

    /// <summary>Keys that spread records over the partitions, and one value of the record size, shared by every mode.</summary>
    public byte[][] Keys { get; } = [.. Enumerable.Range(0, 64).Select(i => System.Text.Encoding.ASCII.GetBytes("key-" + i))];

    public byte[] Value { get; } = CreateValue(RecordSize);

    private static byte[] CreateValue(int size)
    {
        var value = new byte[size];
        for (var i = 0; i < size; i++)
        {
            value[i] = (byte)('a' + (i % 26));
        }

        return value;
    }
}
