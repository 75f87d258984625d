using System.Diagnostics;
using System.Globalization;
using KafkaTx.Reliability.Copying;

namespace KafkaTx.Reliability.Crash;

/// <summary>What a graceful-stop run does.</summary>
internal sealed record StopOptions
{
    /// <summary>Input records in all partitions.</summary>
    public int Records { get; init; } = 20_000;

    public int Partitions { get; init; } = 4;

    /// <summary>Graceful stops, each followed by a restart with the same transactional.id.</summary>
    public int Stops { get; init; } = 10;

    public int Seed { get; init; } = Environment.TickCount;

    public int MaxBatchSize { get; init; } = 100;

    /// <summary>The handler: one that awaits a call with its cancellation token (Await or Split; Copy awaits nothing a stop could land in).</summary>
    public HandlerShape Handler { get; init; } = HandlerShape.Split;

    /// <summary>How long the handler's call takes for every record.</summary>
    public TimeSpan HandlerDelay { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Whether each call awaits a uniform random time from 0 to <see cref="HandlerDelay"/> (handlers overtake each other when concurrent).</summary>
    public bool RandomDelay { get; init; }

    /// <summary>The copier's MaxConcurrency and Order, and the input's keys per partition. Default: today's sequential copy.</summary>
    public CopyConcurrency Concurrency { get; init; } = CopyConcurrency.Sequential;

    /// <summary>How long the call in flight at a stop goes on after the stop began, unless the handler's token cancels it first.</summary>
    public TimeSpan StopCall { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest any one wait of the run may take (a handler entering the armed call, a stop, a first commit, the whole copy).</summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// Copies records while the copier is stopped gracefully again and again, each time while a handler is awaiting a
/// call with its cancellation token, as a deployment or a scale-in stops it: in memory through the host's
/// StopAsync, against a broker with SIGTERM to the child process, which shuts down through the generic host. After
/// each stop the copier restarts at once with the same transactional.id; at the end the output is read with
/// read_committed and checked record by record against the input.
/// </summary>
/// <remarks>
/// Landing the stop in the await: at a random moment (seeded) the harness arms the handler's next call, waits until a
/// handler has entered it, then stops the copier. The armed call stays in flight until the stop has begun and returns
/// <see cref="StopOptions.StopCall"/> later, unless the handler's token cancels it first; the handler records which
/// happened, so the report counts the stops that landed in an await and those whose await the token cancelled.
/// A correct processor takes no new record once stopping, lets that handler finish, and commits exactly the records
/// whose handlers completed; then nothing is lost, nothing is written twice, and with the split handler no half of a
/// record's work is committed without the other.
/// </remarks>
internal sealed class StopHarness(ICopierBackend backend, StopOptions options, TextWriter log)
{
    public async Task<StopReport> RunAsync()
    {
        if (options.Handler == HandlerShape.Copy)
        {
            throw new ArgumentException("A graceful-stop run needs a handler that awaits with its token: --handler await or split.");
        }

        var run = new CopyRun(backend, "stop", options.Records, options.Partitions, options.Stops + 1, log, options.Concurrency);
        var settings = run.Settings(options.MaxBatchSize) with { Handler = options.Handler, HandlerDelay = options.HandlerDelay, RandomDelay = options.RandomDelay, StopCall = options.StopCall };
        var random = new Random(options.Seed);
        var report = run.Report<StopReport>(options.Seed, options.Handler, options.HandlerDelay, options.RandomDelay);

        var firstArmable = options.MaxBatchSize + 1L;
        var armable = (run.ChunkRecords - firstArmable) * 0.8;
        if (armable < 1)
        {
            throw new ArgumentException(
                $"Too few records: each of the {run.Chunks} chunks holds {run.ChunkRecords:N0}, and a stop is armed past the first {options.MaxBatchSize} records of one. Give more --records, fewer --stops or a smaller --max-batch-size.");
        }

        var clock = Stopwatch.StartNew();
        await run.CreateTopicsAsync();
        log.WriteLine($"copying {run.Records:N0} records in {options.Partitions} partitions, written in {run.Chunks} chunks; handler {report.Handler}; seed {options.Seed}");

        var committedBefore = 0L;
        var copier = await backend.StartCopierAsync(settings);
        try
        {
            for (var stop = 0; stop < options.Stops; stop++)
            {
                // Armed before the chunk is written: this incarnation handles at least that chunk, so the armed call,
                // a random way into it (seeded), is always reached; and past MaxBatchSize records, so that the
                // incarnation has committed once before (a transaction commits when it holds MaxBatchSize records).
                copier.ArmStop(firstArmable + (long)(armable * random.NextDouble()));
                run.SeedChunk();
                if (stop > 0)
                {
                    await run.FirstCommitAfterRestartAsync(copier, report, options.Deadline);
                }

                var record = await copier.WaitForArmedCallAsync(options.Deadline);
                var stopping = Stopwatch.StartNew();
                await copier.StopAsync(); // in memory: the host's StopAsync; a child process: SIGTERM, then its exit
                var stopToExit = stopping.Elapsed;
                var end = await copier.WaitForEndAsync(options.Deadline);
                committedBefore += copier.CommittedRecords;
                var figures = new StopFigures(committedBefore, record, stopToExit, end, copier.ArmedAwait);
                report.Stops.Add(figures);
                await copier.DisposeAsync();
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"stop {stop + 1} while the handler of {record} awaited: {figures.Await}; ended {end.State}, exit code {end.ExitCode}, {stopToExit.TotalSeconds:F2} s after the stop; {committedBefore:N0} records committed; restarting"));
                copier = await backend.StartCopierAsync(settings);
            }

            run.SeedChunk(); // the last chunk: work for the last incarnation, however much of the last chunk the one before finished
            if (options.Stops > 0)
            {
                await run.FirstCommitAfterRestartAsync(copier, report, options.Deadline);
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
}

/// <summary>One graceful stop.</summary>
/// <param name="CommittedAfter">Input records committed by all incarnations up to this one's exit.</param>
/// <param name="Record">The record whose handler was awaiting the armed call when the stop was sent.</param>
/// <param name="StopToExit">From the stop (StopAsync called, or SIGTERM sent) to the copier's exit.</param>
/// <param name="End">The processor's final state and the exit code.</param>
/// <param name="ArmedAwait">How the armed await ended; null if the copier never said.</param>
internal sealed record StopFigures(long CommittedAfter, string Record, TimeSpan StopToExit, CopierEnd End, ArmedAwaitEnd? ArmedAwait)
{
    /// <summary>The stop began while the handler was still awaiting the armed call.</summary>
    public bool DuringAwait => ArmedAwait?.StopBegun == true;

    /// <summary>The copier ended as a stop should: its processor Stopped, exit code 0.</summary>
    public bool EndedCleanly => End is { State: "Stopped", ExitCode: 0 };

    /// <summary>How the armed await ended, as the log prints it.</summary>
    public string Await => ArmedAwait switch
    {
        null => "the copier did not say how its await ended",
        { StopBegun: false } => "its call had returned before the stop began",
        { Cancelled: true } => "its token cancelled the await",
        _ => "its call completed",
    };
}

/// <summary>
/// What a graceful-stop run found. Exactly once: every expected output record once, in order, and the group's
/// offsets at the input's end; and conclusive only if every stop landed while a handler awaited.
/// </summary>
internal sealed class StopReport : CopyReport
{
    public List<StopFigures> Stops { get; } = [];

    /// <summary>Stops that began while the handler was awaiting the armed call.</summary>
    public int StopsDuringAwait => Stops.Count(s => s.DuringAwait);

    /// <summary>Stops whose handler's await its cancellation token cancelled.</summary>
    public int AwaitsCancelled => Stops.Count(s => s.ArmedAwait?.Cancelled == true);

    /// <summary>Stops after which the copier ended Stopped with exit code 0.</summary>
    public int StopsEndedCleanly => Stops.Count(s => s.EndedCleanly);

    /// <summary>Exactly once, through stops that all landed in an await and all ended cleanly.</summary>
    public bool Passed => ExactlyOnce && Stops.Count > 0 && StopsDuringAwait == Stops.Count && StopsEndedCleanly == Stops.Count;

    protected override bool PrintsExpectedOutput => true;

    protected override bool PrintsHalfDone => true;

    protected override string ExactlyOnceVerdict =>
        StopsDuringAwait < Stops.Count || Stops.Count == 0 ? "Verdict: exactly once, but not every stop landed in an await: inconclusive."
        : StopsEndedCleanly < Stops.Count ? "Verdict: exactly once, but not every stop ended Stopped with exit code 0."
        : "Verdict: exactly once through every graceful stop.";

    protected override void PrintFaults(TextWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        writer.WriteLine($"stops (graceful):        {Stops.Count}, after about {string.Join(", ", Stops.Select(s => s.CommittedAfter.ToString("N0", c)))} committed records");
        writer.WriteLine($"stop during an await:    {StopsDuringAwait} of {Stops.Count}; the handler's token cancelled the await in {AwaitsCancelled}");
        writer.WriteLine($"stop to exit:            {Seconds(Stops.Select(s => s.StopToExit))}");
        writer.WriteLine($"ended:                   {string.Join(", ", Stops.GroupBy(s => $"{s.End.State}, exit code {s.End.ExitCode}").Select(g => $"{g.Key} x{g.Count()}"))}");
        PrintRestartToCommit(writer);
    }
}
