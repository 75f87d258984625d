using System.Diagnostics;
using System.Globalization;
using KafkaTx.Reliability.Copying;

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

    /// <summary>What the copier's handler does: copy at once by default (a kill cancels nothing, so nothing is awaited).</summary>
    public HandlerShape Handler { get; init; } = HandlerShape.Copy;

    /// <summary>How long the handler's call takes, awaited with its token (Await and Split).</summary>
    public TimeSpan HandlerDelay { get; init; } = TimeSpan.FromMilliseconds(1);

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
    public async Task<CrashReport> RunAsync()
    {
        var chunks = options.Kills + (options.PausedZombie ? 1 : 0) + 1;
        var run = new CopyRun(backend, "crash", options.Records, options.Partitions, chunks, log);
        var settings = run.Settings(options.MaxBatchSize) with { Handler = options.Handler, HandlerDelay = options.HandlerDelay };
        var random = new Random(options.Seed);
        var report = new CrashReport
        {
            Backend = backend.Description,
            Seed = options.Seed,
            Records = run.Records,
            Partitions = options.Partitions,
            OutputsPerRecord = options.Handler.OutputsPerRecord(),
            Handler = options.Handler.Describe(options.HandlerDelay),
        };
        var chunkRecords = run.ChunkRecords;

        var clock = Stopwatch.StartNew();
        await run.CreateTopicsAsync();
        log.WriteLine($"copying {report.Records:N0} records in {options.Partitions} partitions, written in {chunks} chunks; seed {options.Seed}");

        var committedBefore = 0L;
        var copier = await backend.StartCopierAsync(settings);
        try
        {
            run.SeedChunk();
            for (var kill = 0; kill < options.Kills; kill++)
            {
                // Triggered by records handled, not committed: the kill lands while a transaction is open.
                var target = (kill * chunkRecords) + (long)(chunkRecords * (0.1 + (0.8 * random.NextDouble())));
                await CopyRun.UntilAsync(() => committedBefore + copier.HandledRecords >= target, options.Deadline);
                await copier.KillAsync();
                committedBefore += copier.CommittedRecords;
                report.KilledAt.Add(committedBefore);
                await copier.DisposeAsync();
                log.WriteLine($"SIGKILL after {committedBefore:N0} records committed; restarting at once with the same transactional.id");

                copier = await backend.StartCopierAsync(settings);
                run.SeedChunk(); // so that the new incarnation has work, however much of the last chunk the old one finished
                if (await CopyRun.UntilAsync(() => copier.FirstCommitAt is not null, options.Deadline) && copier.FirstCommitAt is { } first)
                {
                    report.RestartToCommit.Add(first - copier.StartedAt);
                    log.WriteLine($"  next commit {(first - copier.StartedAt).TotalSeconds:F2} s after the restart");
                }
            }

            if (options.PausedZombie)
            {
                copier = await PausedZombieAsync(copier, settings, report, random, run.SeedChunk);
            }

            run.SeedRest();
            await run.UntilCopiedAsync(copier, options.Deadline);
            await copier.StopAsync();
        }
        finally
        {
            await copier.DisposeAsync();
        }

        var verdict = run.Verify(report.OutputsPerRecord);
        report.OutputRecords = verdict.OutputRecords;
        report.Duplicates = verdict.Duplicates;
        report.Losses = verdict.Losses;
        report.PartitionsOutOfOrder = verdict.PartitionsOutOfOrder;
        report.PartitionsFullyCommitted = verdict.PartitionsFullyCommitted;
        report.Elapsed = clock.Elapsed;
        return report;
    }

    private async Task<ICopier> PausedZombieAsync(ICopier zombie, CopierSettings settings, CrashReport report, Random random, Action seedChunk)
    {
        await CopyRun.UntilAsync(() => zombie.FirstCommitAt is not null, options.Deadline);
        await Task.Delay(random.Next(0, 20));
        zombie.Pause();
        log.WriteLine("SIGSTOP in mid-copy; starting a replacement with the same transactional.id");
        var replacement = await backend.StartCopierAsync(settings);
        seedChunk(); // work for the replacement, and for the zombie to try to write once it is resumed
        await CopyRun.UntilAsync(() => replacement.FirstCommitAt is not null, options.Deadline);
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
}

/// <summary>What a crash run found. Exactly once: every input record once in the output, in order, and the group's offsets at the input's end.</summary>
internal sealed class CrashReport
{
    public string Backend { get; init; } = string.Empty;

    public int Seed { get; init; }

    public long Records { get; init; }

    public int Partitions { get; init; }

    /// <summary>Output records each input record gives (2 with the split handler).</summary>
    public int OutputsPerRecord { get; init; } = 1;

    /// <summary>The handler's shape, as the report prints it.</summary>
    public string Handler { get; init; } = HandlerShape.Copy.Describe(TimeSpan.Zero);

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
        Duplicates == 0 && Losses == 0 && PartitionsOutOfOrder == 0 && OutputRecords == Records * OutputsPerRecord && PartitionsFullyCommitted == Partitions && ZombieFenced;

    public void Print(TextWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        writer.WriteLine();
        writer.WriteLine($"backend:                 {Backend}");
        writer.WriteLine($"seed:                    {Seed}");
        writer.WriteLine(string.Create(c, $"input:                   {Records:N0} records in {Partitions} partitions"));
        writer.WriteLine($"handler:                 {Handler}");
        writer.WriteLine($"kills (SIGKILL):         {KilledAt.Count}, after about {string.Join(", ", KilledAt.Select(k => k.ToString("N0", c)))} committed records");
        writer.WriteLine($"restart to next commit:  {(RestartToCommit.Count == 0 ? "-" : string.Join(", ", RestartToCommit.Select(t => t.TotalSeconds.ToString("F2", c) + " s")))}");
        writer.WriteLine($"paused zombie:           {(Zombie is null ? "not run" : $"ended {Zombie.State}, exit code {Zombie.ExitCode}")}");
        writer.WriteLine(string.Create(c, $"output (read_committed): {OutputRecords:N0} records; duplicates {Duplicates}; losses {Losses}; partitions out of order {PartitionsOutOfOrder}"));
        writer.WriteLine($"group offsets at end:    {PartitionsFullyCommitted} of {Partitions} partitions");
        writer.WriteLine(string.Create(c, $"total time:              {Elapsed.TotalSeconds:F1} s"));
        writer.WriteLine(ExactlyOnce ? "Verdict: exactly once." : "Verdict: NOT exactly once.");
    }
}
