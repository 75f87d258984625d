using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Verification;

namespace KafkaTx.Reliability.Crash;

/// <summary>
/// What the crash and stop runs share: unique topics, group and transactional.id; the report's description of the
/// run; the input written in chunks (one at the start and one after each fault, so that every fault lands in the
/// middle of the copy and every new incarnation has work, however fast the backend copies); the wait for a restarted
/// copier's first commit; the wait for the copy to complete; and the verification.
/// </summary>
internal sealed class CopyRun
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(5);

    private readonly ICopierBackend _backend;
    private readonly TextWriter _log;
    private readonly long _perChunk;
    private long _seeded;
    private DateTime _lastDoneCheck;
    private bool _done;

    public CopyRun(ICopierBackend backend, string kind, int records, int partitions, int chunks, TextWriter log, CopyConcurrency? concurrency = null)
    {
        Concurrency = concurrency ?? CopyConcurrency.Sequential;
        _backend = backend;
        _log = log;
        var run = Guid.NewGuid().ToString("N")[..8];
        Input = $"{kind}-input-{run}";
        Output = $"{kind}-output-{run}";
        Group = $"{kind}-copiers-{run}";
        TransactionalId = $"{kind}-copier-{run}";
        Partitions = partitions;
        Chunks = chunks;
        PerPartition = Math.Max(chunks, records / partitions);
        _perChunk = PerPartition / chunks;
    }

    public string Input { get; }

    /// <summary>How concurrently the copiers handle records, and how the input is keyed.</summary>
    public CopyConcurrency Concurrency { get; }

    public string Output { get; }

    public string Group { get; }

    public string TransactionalId { get; }

    public int Partitions { get; }

    public int Chunks { get; }

    /// <summary>Input records per partition.</summary>
    public long PerPartition { get; }

    /// <summary>Input records in all.</summary>
    public long Records => PerPartition * Partitions;

    /// <summary>Input records per chunk, all partitions together.</summary>
    public long ChunkRecords => _perChunk * Partitions;

    /// <summary>The copier settings of this run's instance: every incarnation has the same transactional.id.</summary>
    public CopierSettings Settings(int maxBatchSize) =>
        Concurrency.Apply(new(_backend is BrokerCopierBackend broker ? broker.BootstrapServers : "in-memory", Input, Output, Group, TransactionalId, maxBatchSize));

    /// <summary>A report of this run, describing the backend, the seed, the input and the handler.</summary>
    public TReport Report<TReport>(int seed, HandlerShape handler, TimeSpan handlerDelay, bool randomDelay = false)
        where TReport : CopyReport, new() =>
        new()
        {
            Backend = _backend.Description,
            Seed = seed,
            Records = Records,
            Partitions = Partitions,
            OutputsPerRecord = handler.OutputsPerRecord(),
            Handler = handler.Describe(handlerDelay, randomDelay),
            Concurrency = Concurrency == CopyConcurrency.Sequential ? null : Concurrency.Describe(),
            OrderChecked = Concurrency.OrderChecked,
        };

    public Task CreateTopicsAsync() => _backend.CreateTopicsAsync(Partitions, Input, Output);

    /// <summary>Writes the next chunk of input; the last one takes the remainder.</summary>
    public void SeedChunk()
    {
        var count = _seeded + (2 * _perChunk) > PerPartition ? PerPartition - _seeded : _perChunk;
        Seed(count);
    }

    /// <summary>Writes whatever input is not written yet.</summary>
    public void SeedRest() => Seed(PerPartition - _seeded);

    /// <summary>Waits for a restarted copier's first commit; records and logs the time from its start to that commit, if it came by the deadline.</summary>
    public async Task FirstCommitAfterRestartAsync(ICopier copier, CopyReport report, TimeSpan deadline)
    {
        if (await UntilAsync(() => copier.FirstCommitAt is not null, deadline) && copier.FirstCommitAt is { } first)
        {
            report.RestartToCommit.Add(first - copier.StartedAt);
            _log.WriteLine($"  next commit {(first - copier.StartedAt).TotalSeconds:F2} s after the restart");
        }
    }

    /// <summary>Waits until the group has committed the whole input; logs how far each partition got if it has not by the deadline.</summary>
    public async Task<bool> UntilCopiedAsync(ICopier copier, TimeSpan deadline)
    {
        if (await UntilAsync(IsDone, deadline))
        {
            return true;
        }

        var stuck = _backend.Progress(Input, Group);
        _log.WriteLine($"the copy did not finish within {deadline}: committed/end per partition {string.Join(", ", stuck.Select(p => $"{p.Key}: {p.Value.Committed}/{p.Value.End}"))}");
        if (copier is ProcessCopier process)
        {
            _log.WriteLine("the copier printed:" + Environment.NewLine + process.Output);
        }

        return false;
    }

    /// <summary>Reads the output with read_committed and checks it, record by record, against the input.</summary>
    public CopyVerdict Verify(int outputsPerRecord)
    {
        var verifier = new OutputVerifier(Concurrency.Keys, outputsPerRecord, Concurrency.ChecksOrder);
        _backend.ReadNewOutput(Output, verifier);
        var progress = _backend.Progress(Input, Group);
        var outputCounts = progress.ToDictionary(p => p.Key, p => p.Value.End * outputsPerRecord);
        return new CopyVerdict(
            verifier.Records,
            verifier.Duplicates + verifier.Malformed,
            verifier.Losses(outputCounts),
            outputsPerRecord == 2 ? verifier.HalfDone(outputCounts) : 0,
            verifier.PartitionsOutOfOrder,
            progress.Count(p => p.Value.Committed == p.Value.End))
        {
            KeysOutOfOrder = verifier.KeysOutOfOrder,
            RecordsOutOfOrder = verifier.OutOfOrder,
        };
    }

    /// <summary>Polls <paramref name="condition"/> until it holds (true) or the deadline passes (false).</summary>
    public static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan deadline)
    {
        var until = DateTime.UtcNow + deadline;
        while (!condition())
        {
            if (DateTime.UtcNow > until)
            {
                return false;
            }

            await Task.Delay(Poll);
        }

        return true;
    }

    private void Seed(long count)
    {
        if (count > 0)
        {
            _backend.Seed(Input, Partitions, _seeded, (int)count, Concurrency.Keys);
            _seeded += count;
        }
    }

    /// <summary>Whether the group has committed the whole input; asked of the backend at most every 200 ms.</summary>
    private bool IsDone()
    {
        if (!_done && DateTime.UtcNow - _lastDoneCheck > TimeSpan.FromMilliseconds(200))
        {
            _lastDoneCheck = DateTime.UtcNow;
            _done = _backend.HasCopiedAll(Input, Group);
        }

        return _done;
    }
}

/// <summary>What the output showed, against the input.</summary>
/// <param name="OutputRecords">Records read from the output with read_committed.</param>
/// <param name="Duplicates">Records read more than once, and malformed ones.</param>
/// <param name="Losses">Expected output records never read.</param>
/// <param name="HalfDone">With two output records per input record: input records whose first half was committed and whose second never was.</param>
/// <param name="PartitionsOutOfOrder">Input partitions with a record after a later one (order checked per partition).</param>
/// <param name="PartitionsFullyCommitted">Input partitions whose committed offset is their end offset.</param>
internal sealed record CopyVerdict(long OutputRecords, long Duplicates, long Losses, long HalfDone, int PartitionsOutOfOrder, int PartitionsFullyCommitted)
{
    /// <summary>Keys with a record after a later one of the same key (order checked per key).</summary>
    public int KeysOutOfOrder { get; init; }

    /// <summary>Records read after a later one of their partition or key, a defect or not (unordered).</summary>
    public long RecordsOutOfOrder { get; init; }
}
