using System.Diagnostics;
using System.Globalization;
using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Verification;

namespace KafkaTx.Reliability.Crash;

/// <summary>What a crash run does.</summary>
internal sealed record CrashOptions
{
    public int Records { get; init; } = 100_000;

    public int Partitions { get; init; } = 4;

    public int Kills { get; init; } = 5;

    public bool PausedZombie { get; init; } = true;

    public int Seed { get; init; } = Environment.TickCount;

    public int MaxBatchSize { get; init; } = 100;

    public TimeSpan Deadline { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// Copies records while the copier is killed, the way Kafka's own system tests prove exactly-once: seed the input,
/// run the consume-transform-produce copier, SIGKILL it at random moments and restart it at once with the same
/// transactional.id, pause one incarnation while a replacement takes over and resume it (it must be fenced, write
/// nothing and exit), then read the output with read_committed and check it against the input.
/// </summary>
internal sealed class CrashHarness(ICopierBackend backend, CrashOptions options, TextWriter log)
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(5);

    public async Task<CrashReport> RunAsync()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var input = "crash-input-" + run;
        var output = "crash-output-" + run;
        var settings = new CopierSettings(BootstrapServersOf(backend), input, output, "crash-copiers-" + run, "crash-copier-" + run, options.MaxBatchSize);
        var random = new Random(options.Seed);

        // The input is written in chunks: one at the start and one after each fault, so that every fault lands in the
        // middle of the copy, and every new incarnation has work, however fast the backend copies.
        var chunks = options.Kills + (options.PausedZombie ? 1 : 0) + 1;
        var perPartition = Math.Max(chunks, options.Records / options.Partitions);
        var perChunk = perPartition / chunks;
        var report = new CrashReport { Backend = backend.Description, Seed = options.Seed, Records = (long)perPartition * options.Partitions, Partitions = options.Partitions };
        var chunkRecords = (long)perChunk * options.Partitions;
        var seeded = 0L;
        void SeedChunk()
        {
            var count = seeded + (2 * perChunk) > perPartition ? perPartition - seeded : perChunk; // the last takes the remainder
            backend.Seed(input, options.Partitions, seeded, (int)count);
            seeded += count;
        }

        var clock = Stopwatch.StartNew();
        await backend.CreateTopicsAsync(options.Partitions, input, output);
        log.WriteLine($"copying {report.Records:N0} records in {options.Partitions} partitions, written in {chunks} chunks; seed {options.Seed}");

        var committedBefore = 0L;
        var copier = await backend.StartCopierAsync(settings);
        try
        {
            SeedChunk();
            for (var kill = 0; kill < options.Kills; kill++)
            {
                // Triggered by records handled, not committed: the kill lands while a transaction is open.
                var target = (kill * chunkRecords) + (long)(chunkRecords * (0.1 + (0.8 * random.NextDouble())));
                await UntilAsync(() => committedBefore + copier.HandledRecords >= target, options.Deadline);
                await copier.KillAsync();
                committedBefore += copier.CommittedRecords;
                report.KilledAt.Add(committedBefore);
                await copier.DisposeAsync();
                log.WriteLine($"SIGKILL after {committedBefore:N0} records committed; restarting at once with the same transactional.id");

                copier = await backend.StartCopierAsync(settings);
                SeedChunk(); // so that the new incarnation has work, however much of the last chunk the old one finished
                if (await UntilAsync(() => copier.FirstCommitAt is not null, options.Deadline) && copier.FirstCommitAt is { } first)
                {
                    report.RestartToCommit.Add(first - copier.StartedAt);
                    log.WriteLine($"  next commit {(first - copier.StartedAt).TotalSeconds:F2} s after the restart");
                }
            }

            if (options.PausedZombie)
            {
                copier = await PausedZombieAsync(copier, settings, report, random, SeedChunk);
            }

            if (seeded < perPartition)
            {
                backend.Seed(input, options.Partitions, seeded, (int)(perPartition - seeded));
                seeded = perPartition;
            }

            if (!await UntilAsync(() => IsDone(input, settings.Group), options.Deadline))
            {
                var stuck = backend.Progress(input, settings.Group);
                log.WriteLine($"the copy did not finish within {options.Deadline}: committed/end per partition {string.Join(", ", stuck.Select(p => $"{p.Key}: {p.Value.Committed}/{p.Value.End}"))}");
                if (copier is ProcessCopier process)
                {
                    log.WriteLine("the copier printed:" + Environment.NewLine + process.Output);
                }
            }

            await copier.StopAsync();
        }
        finally
        {
            await copier.DisposeAsync();
        }

        var verifier = new OutputVerifier();
        backend.ReadNewOutput(output, verifier);
        var progress = backend.Progress(input, settings.Group);
        report.OutputRecords = verifier.Records;
        report.Duplicates = verifier.Duplicates + verifier.Malformed;
        report.Losses = verifier.Losses(progress.ToDictionary(p => p.Key, p => p.Value.End));
        report.PartitionsOutOfOrder = verifier.PartitionsOutOfOrder;
        report.PartitionsFullyCommitted = progress.Count(p => p.Value.Committed == p.Value.End);
        report.Elapsed = clock.Elapsed;
        return report;
    }

    private async Task<ICopier> PausedZombieAsync(ICopier zombie, CopierSettings settings, CrashReport report, Random random, Action seedChunk)
    {
        await UntilAsync(() => zombie.FirstCommitAt is not null, options.Deadline);
        await Task.Delay(random.Next(0, 20));
        zombie.Pause();
        log.WriteLine("SIGSTOP in mid-copy; starting a replacement with the same transactional.id");
        var replacement = await backend.StartCopierAsync(settings);
        seedChunk(); // work for the replacement, and for the zombie to try to write once it is resumed
        await UntilAsync(() => replacement.FirstCommitAt is not null, options.Deadline);
        zombie.Resume();
        log.WriteLine("SIGCONT to the paused copier");
        try
        {
            var end = await zombie.WaitForEndAsync(TimeSpan.FromSeconds(90));
            report.Zombie = end;
            log.WriteLine($"  the resumed copier ended {end.State}, exit code {end.ExitCode}");
        }
        catch (TimeoutException)
        {
            report.Zombie = new CopierEnd("still running 90 s after SIGCONT", 0);
        }

        await zombie.DisposeAsync();
        return replacement;
    }

    private DateTime _lastDoneCheck;
    private bool _done;

    /// <summary>Whether the group has committed the whole input; asked of the backend at most every 200 ms.</summary>
    private bool IsDone(string input, string group)
    {
        if (!_done && DateTime.UtcNow - _lastDoneCheck > TimeSpan.FromMilliseconds(200))
        {
            _lastDoneCheck = DateTime.UtcNow;
            _done = backend.HasCopiedAll(input, group);
        }

        return _done;
    }

    private static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan deadline)
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

    private static string BootstrapServersOf(ICopierBackend backend) => backend is BrokerCopierBackend broker ? broker.BootstrapServers : "in-memory";
}

/// <summary>What a crash run found. Exactly once: every input record once in the output, in order, and the group's offsets at the input's end.</summary>
internal sealed class CrashReport
{
    public string Backend { get; init; } = string.Empty;

    public int Seed { get; init; }

    public long Records { get; init; }

    public int Partitions { get; init; }

    public List<long> KilledAt { get; } = [];

    public List<TimeSpan> RestartToCommit { get; } = [];

    public CopierEnd? Zombie { get; set; }

    public long OutputRecords { get; set; }

    public long Duplicates { get; set; }

    public long Losses { get; set; }

    public int PartitionsOutOfOrder { get; set; }

    public int PartitionsFullyCommitted { get; set; }

    public TimeSpan Elapsed { get; set; }

    public bool ZombieFenced => Zombie is null || (Zombie.State == "Fenced" && Zombie.ExitCode != 0);

    public bool ExactlyOnce =>
        Duplicates == 0 && Losses == 0 && PartitionsOutOfOrder == 0 && OutputRecords == Records && PartitionsFullyCommitted == Partitions && ZombieFenced;

    public void Print(TextWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        writer.WriteLine();
        writer.WriteLine($"backend:                 {Backend}");
        writer.WriteLine($"seed:                    {Seed}");
        writer.WriteLine(string.Create(c, $"input:                   {Records:N0} records in {Partitions} partitions"));
        writer.WriteLine($"kills (SIGKILL):         {KilledAt.Count}, after about {string.Join(", ", KilledAt.Select(k => k.ToString("N0", c)))} committed records");
        writer.WriteLine($"restart to next commit:  {(RestartToCommit.Count == 0 ? "-" : string.Join(", ", RestartToCommit.Select(t => t.TotalSeconds.ToString("F2", c) + " s")))}");
        writer.WriteLine($"paused zombie:           {(Zombie is null ? "not run" : $"ended {Zombie.State}, exit code {Zombie.ExitCode}")}");
        writer.WriteLine(string.Create(c, $"output (read_committed): {OutputRecords:N0} records; duplicates {Duplicates}; losses {Losses}; partitions out of order {PartitionsOutOfOrder}"));
        writer.WriteLine($"group offsets at end:    {PartitionsFullyCommitted} of {Partitions} partitions");
        writer.WriteLine(string.Create(c, $"total time:              {Elapsed.TotalSeconds:F1} s"));
        writer.WriteLine(ExactlyOnce ? "Verdict: exactly once." : "Verdict: NOT exactly once.");
    }
}
