using System.Globalization;

namespace KafkaTx.Reliability.Verification;

/// <summary>
/// Checks a copy of the input, record by record, in the order a read_committed reader sees the output. Every input
/// value is "partition:sequence", and all records of one input partition share a key, so they land in one output
/// partition, where their sequences must follow each other: 0, 1, 2 ... with nothing twice, nothing missing.
/// </summary>
/// <remarks>
/// Memory stays flat over a long run: per input partition it keeps the next expected sequence and the sequences
/// skipped so far (none, in a correct run), never the records themselves.
/// </remarks>
internal sealed class OutputVerifier
{
    private readonly Dictionary<int, PartitionProgress> _partitions = [];

    /// <summary>Records read from the output.</summary>
    public long Records { get; private set; }

    /// <summary>Records read more than once.</summary>
    public long Duplicates { get; private set; }

    /// <summary>Records that came after a later record of the same input partition.</summary>
    public long OutOfOrder { get; private set; }

    /// <summary>Output values that are not "partition:sequence".</summary>
    public long Malformed { get; private set; }

    /// <summary>Input partitions with at least one record out of order.</summary>
    public int PartitionsOutOfOrder => _partitions.Values.Count(p => p.OutOfOrder > 0);

    public static string Value(int partition, long sequence) =>
        partition.ToString(CultureInfo.InvariantCulture) + ":" + sequence.ToString(CultureInfo.InvariantCulture);

    public static string Key(int partition) => "p" + partition.ToString(CultureInfo.InvariantCulture);

    /// <summary>The next output record, in the order it was read.</summary>
    public void Observe(string? value)
    {
        Records++;
        var colon = value?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        if (colon <= 0
            || !int.TryParse(value.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var partition)
            || !long.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var sequence))
        {
            Malformed++;
            return;
        }

        if (!_partitions.TryGetValue(partition, out var progress))
        {
            _partitions[partition] = progress = new PartitionProgress();
        }

        if (sequence == progress.Next)
        {
            progress.Next++;
        }
        else if (sequence > progress.Next)
        {
            for (var skipped = progress.Next; skipped < sequence; skipped++)
            {
                progress.Missing.Add(skipped);
            }

            progress.Next = sequence + 1;
        }
        else if (progress.Missing.Remove(sequence))
        {
            progress.OutOfOrder++;
            OutOfOrder++;
        }
        else
        {
            Duplicates++;
        }
    }

    /// <summary>Input records never seen in the output, given how many each input partition holds.</summary>
    public long Losses(IReadOnlyDictionary<int, long> inputCounts)
    {
        var losses = 0L;
        foreach (var (partition, count) in inputCounts)
        {
            if (_partitions.TryGetValue(partition, out var progress))
            {
                losses += progress.Missing.Count + Math.Max(0, count - progress.Next);
            }
            else
            {
                losses += count;
            }
        }

        return losses;
    }

    /// <summary>
    /// For a copy written two output records per input record (the split handler: input <c>p:s</c> as <c>p:2s</c>
    /// then <c>p:2s+1</c>): records whose first half was read and whose second half never was, that is, a handler's
    /// half-done work that was committed. Each is also counted in <see cref="Losses"/>.
    /// </summary>
    public long HalfDone(IReadOnlyDictionary<int, long> outputCounts)
    {
        var halves = 0L;
        foreach (var (partition, count) in outputCounts)
        {
            if (!_partitions.TryGetValue(partition, out var progress))
            {
                continue;
            }

            halves += progress.Missing.Count(s => s % 2 == 1 && !progress.Missing.Contains(s - 1));
            if (progress.Next % 2 == 1 && progress.Next < count)
            {
                halves++; // the last record read was a first half
            }
        }

        return halves;
    }

    private sealed class PartitionProgress
    {
        public long Next { get; set; }

        public HashSet<long> Missing { get; } = [];

        public long OutOfOrder { get; set; }
    }
}
