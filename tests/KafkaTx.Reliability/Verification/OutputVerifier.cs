using System.Globalization;

namespace KafkaTx.Reliability.Verification;

/// <summary>
/// Checks a copy of the input, record by record, in the order a read_committed reader sees the output. Every input
/// value is "partition:sequence". By default all records of one input partition share a key, so they land in one
/// output partition, where their sequences must follow each other: 0, 1, 2 ... with nothing twice, nothing missing.
/// </summary>
/// <remarks>
/// <para>
/// With <c>keys</c> above 1 (key order), input sequence <c>s</c> of partition <c>p</c> has key <c>p{p}-k{s % keys}</c>
/// (see <see cref="Key(int, long, int)"/>): each key's records are spread over its partition, one every
/// <c>keys</c> records. The order checked is then per key: the records of one key in input-offset order, whatever
/// order records of different keys come in. Without order checked (unordered), a record after a later one is still
/// counted, but is no defect; duplicates and losses are checked the same in every mode.
/// </para>
/// <para>
/// Memory stays flat over a long run: per stream (an input partition, or a key) it keeps the next expected position
/// and the positions skipped so far (none, in a correct ordered run), never the records themselves.
/// </para>
/// </remarks>
internal sealed class OutputVerifier
{
    private readonly Dictionary<(int Partition, int Key), StreamProgress> _streams = [];
    private readonly int _keys;
    private readonly int _outputsPerRecord;

    /// <summary>A verifier of today's copy: one key per input partition, order checked per partition.</summary>
    public OutputVerifier()
        : this(keys: 1, outputsPerRecord: 1, checksOrder: true)
    {
    }

    /// <param name="keys">Keys per input partition, as the input was written (1: one key per partition).</param>
    /// <param name="outputsPerRecord">Output records per input record (2 with the split handler).</param>
    /// <param name="checksOrder">Whether a record after a later one of its stream is a defect (false: unordered).</param>
    public OutputVerifier(int keys, int outputsPerRecord, bool checksOrder)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keys, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outputsPerRecord, 1);
        _keys = keys;
        _outputsPerRecord = outputsPerRecord;
        ChecksOrder = checksOrder;
    }

    /// <summary>Whether order is a defect; false for an unordered copy.</summary>
    public bool ChecksOrder { get; }

    /// <summary>Records read from the output.</summary>
    public long Records { get; private set; }

    /// <summary>Records read more than once.</summary>
    public long Duplicates { get; private set; }

    /// <summary>Records that came after a later record of the same stream (input partition, or key).</summary>
    public long OutOfOrder { get; private set; }

    /// <summary>Output values that are not "partition:sequence".</summary>
    public long Malformed { get; private set; }

    /// <summary>Input partitions with at least one record out of order (one key per partition).</summary>
    public int PartitionsOutOfOrder => _keys == 1 ? StreamsOutOfOrder : 0;

    /// <summary>Keys with at least one record out of order (several keys per partition: key order).</summary>
    public int KeysOutOfOrder => _keys > 1 ? StreamsOutOfOrder : 0;

    /// <summary>Streams (partitions, or keys) with a record out of order, where order is checked: what fails a verdict.</summary>
    public int StreamsOutOfOrder => ChecksOrder ? _streams.Values.Count(p => p.OutOfOrder > 0) : 0;

    public static string Value(int partition, long sequence) =>
        partition.ToString(CultureInfo.InvariantCulture) + ":" + sequence.ToString(CultureInfo.InvariantCulture);

    public static string Key(int partition) => "p" + partition.ToString(CultureInfo.InvariantCulture);

    /// <summary>The key of input sequence <paramref name="sequence"/> of a partition written with <paramref name="keys"/> keys.</summary>
    public static string Key(int partition, long sequence, int keys) =>
        keys <= 1 ? Key(partition) : Key(partition) + "-k" + (sequence % keys).ToString(CultureInfo.InvariantCulture);

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

        // Output o is half o % R of input s = o / R; input s is the (s / keys)-th record of key s % keys. Within a key
        // the outputs follow each other without gaps: the position below counts them. With one key it is o itself.
        var input = sequence / _outputsPerRecord;
        var key = (int)(input % _keys);
        var position = ((input / _keys) * _outputsPerRecord) + (sequence % _outputsPerRecord);
        if (!_streams.TryGetValue((partition, key), out var progress))
        {
            _streams[(partition, key)] = progress = new StreamProgress();
        }

        if (position == progress.Next)
        {
            progress.Next++;
        }
        else if (position > progress.Next)
        {
            for (var skipped = progress.Next; skipped < position; skipped++)
            {
                progress.Missing.Add(skipped);
            }

            progress.Next = position + 1;
        }
        else if (progress.Missing.Remove(position))
        {
            progress.OutOfOrder++;
            OutOfOrder++;
        }
        else
        {
            Duplicates++;
        }
    }

    /// <summary>Expected output records never seen in the output, given how many each input partition's copy holds.</summary>
    public long Losses(IReadOnlyDictionary<int, long> outputCounts)
    {
        var losses = 0L;
        foreach (var (partition, key, count) in Streams(outputCounts))
        {
            if (_streams.TryGetValue((partition, key), out var progress))
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
        foreach (var (partition, key, count) in Streams(outputCounts))
        {
            if (!_streams.TryGetValue((partition, key), out var progress))
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

    /// <summary>Each stream's expected output count, from each input partition's: its key's share of the partition's records.</summary>
    private IEnumerable<(int Partition, int Key, long Count)> Streams(IReadOnlyDictionary<int, long> outputCounts)
    {
        foreach (var (partition, count) in outputCounts)
        {
            if (_keys == 1)
            {
                yield return (partition, 0, count);
                continue;
            }

            var inputs = count / _outputsPerRecord;
            for (var key = 0; key < _keys; key++)
            {
                var ofKey = inputs > key ? ((inputs - key - 1) / _keys) + 1 : 0;
                yield return (partition, key, ofKey * _outputsPerRecord);
            }
        }
    }

    private sealed class StreamProgress
    {
        public long Next { get; set; }

        public HashSet<long> Missing { get; } = [];

        public long OutOfOrder { get; set; }
    }
}
