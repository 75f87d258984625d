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

    /// <summary>Whether each call awaits a uniform random time from 0 to <see cref="HandlerDelay"/> (handlers overtake each other when concurrent).</summary>
    public bool RandomDelay { get; init; }

    /// <summary>The copier's MaxConcurrency and Order, and the input's keys per partition. Default: today's sequential copy.</summary>
    public CopyConcurrency Concurrency { get; init; } = CopyConcurrency.Sequential;

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
        var run = new CopyRun(backend, "crash", options.Records, options.Partitions, chunks, log, options.Concurrency);
        var settings = run.Settings(options.MaxBatchSize) with { Handler = options.Handler, HandlerDelay = options.HandlerDelay, RandomDelay = options.RandomDelay };
        var random = new Random(options.Seed);
        var report = run.Report<CrashReport>(options.Seed, options.Handler, options.HandlerDelay, options.RandomDelay);
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
                await run.FirstCommitAfterRestartAsync(copier, report, options.Deadline);
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

        report.Conclude(run.Verify(report.OutputsPerRecord), clock.Elapsed);
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

/// <summary>What a crash run found. Exactly once: every input record once in the output, in order, the group's offsets at the input's end, and the paused zombie fenced.</summary>
internal sealed class CrashReport : CopyReport
{
    public List<long> KilledAt { get; } = [];

    public CopierEnd? Zombie { get; set; }

    public bool ZombieFenced => Zombie is null || (Zombie.State == "Fenced" && Zombie.ExitCode != 0);

    public override bool ExactlyOnce => base.ExactlyOnce && ZombieFenced;

    protected override string ExactlyOnceVerdict => "Verdict: exactly once.";

    protected override void PrintFaults(TextWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        writer.WriteLine($"kills (SIGKILL):         {KilledAt.Count}, after about {string.Join(", ", KilledAt.Select(k => k.ToString("N0", c)))} committed records");
        PrintRestartToCommit(writer);
        writer.WriteLine($"paused zombie:           {(Zombie is null ? "not run" : $"ended {Zombie.State}, exit code {Zombie.ExitCode}")}");
    }
}
