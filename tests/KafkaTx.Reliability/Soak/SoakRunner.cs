using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;
using KafkaTx.Reliability.Verification;

namespace KafkaTx.Reliability.Soak;

internal sealed record SoakOptions
{
    public TimeSpan Duration { get; init; } = TimeSpan.FromMinutes(10);

    public int Partitions { get; init; } = 6;

    /// <summary>Records written to each input partition per round.</summary>
    public int RecordsPerRound { get; init; } = 1_000;

    public TimeSpan FaultEvery { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan SampleEvery { get; init; } = TimeSpan.FromSeconds(10);

    public int Seed { get; init; } = Environment.TickCount;
}

/// <summary>
/// Runs the copier for a long time on the in-memory Kafka, in rounds: write a round of input, inject the next fault,
/// wait until the round is committed, check the new output record by record, then delete what has been copied and
/// checked (Kafka's DeleteRecords), so that the data itself does not grow. Process memory is sampled after a full
/// collection; it must stay flat: no leaked producers, consumers, hosts or per-transaction state.
/// </summary>
internal sealed class SoakRunner(SoakOptions options, TextWriter log)
{
    private static readonly string[] FaultNames = ["crash and restart", "fatal commit (INVALID_TXN_STATE)", "abortable commit", "fatal abort after an abortable commit", "rebalance", "fenced by a new instance"];

    public async Task<SoakReport> RunAsync()
    {
        await using var backend = new InMemoryCopierBackend();
        var cluster = backend.Cluster;
        const string Input = "soak-input";
        const string Output = "soak-output";
        var settings = new CopierSettings("in-memory", Input, Output, "soak-copiers", "soak-copier-0");
        await backend.CreateTopicsAsync(options.Partitions, Input, Output);
        var report = new SoakReport();
        var verifier = new OutputVerifier();
        var random = new Random(options.Seed);
        var clock = Stopwatch.StartNew();
        var nextFault = options.FaultEvery;
        var nextSample = TimeSpan.Zero;
        var faultIndex = 0;
        var sequence = 0L;
        var copier = await backend.StartCopierAsync(settings);
        try
        {
            while (clock.Elapsed < options.Duration)
            {
                if (clock.Elapsed >= nextSample)
                {
                    report.Samples.Add(Sample(clock.Elapsed));
                    log.WriteLine(report.Samples[^1].ToString());
                    nextSample += options.SampleEvery;
                }

                backend.Seed(Input, options.Partitions, sequence, options.RecordsPerRound);
                sequence += options.RecordsPerRound;

                if (clock.Elapsed >= nextFault)
                {
                    var fault = faultIndex++ % FaultNames.Length;
                    copier = await InjectAsync(fault, copier, backend, settings, random);
                    report.Faults[FaultNames[fault]] = report.Faults.GetValueOrDefault(FaultNames[fault]) + 1;
                    nextFault += options.FaultEvery;
                }

                var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
                while (!backend.HasCopiedAll(Input, settings.Group))
                {
                    if (DateTime.UtcNow > until)
                    {
                        throw new TimeoutException($"Round {report.Rounds + 1} was not copied within 60 s.");
                    }

                    copier = await ReplaceIfStoppedAsync(copier, backend, settings);
                    await Task.Delay(5);
                }

                backend.ReadNewOutput(Output, verifier);
                backend.DeleteBefore(Input, backend.Progress(Input, settings.Group).ToDictionary(p => p.Key, p => p.Value.Committed));
                backend.DeleteBefore(Output, backend.OutputPositions(Output));
                report.Rounds++;
            }

            await copier.StopAsync();
        }
        finally
        {
            await copier.DisposeAsync();
        }

        report.Samples.Add(Sample(clock.Elapsed));
        report.Elapsed = clock.Elapsed;
        report.RecordsCopied = verifier.Records;
        report.Duplicates = verifier.Duplicates + verifier.Malformed;
        report.Losses = verifier.Losses(Enumerable.Range(0, options.Partitions).ToDictionary(p => p, _ => sequence));
        report.OutOfOrder = verifier.OutOfOrder;
        return report;
    }

    private static async Task<ICopier> InjectAsync(int fault, ICopier copier, InMemoryCopierBackend backend, CopierSettings settings, Random random)
    {
        var cluster = backend.Cluster;
        switch (fault)
        {
            case 0:
                await Task.Delay(random.Next(0, 20));
                await copier.KillAsync();
                await copier.DisposeAsync();
                return await backend.StartCopierAsync(settings);
            case 1:
                cluster.FailNextCommit(settings.TransactionalId, ErrorCode.InvalidTxnState);
                return copier;
            case 2:
                cluster.FailNextCommit(settings.TransactionalId, ErrorCode.TransactionCoordinatorFenced);
                return copier;
            case 3:
                cluster.FailNextCommit(settings.TransactionalId, ErrorCode.TransactionCoordinatorFenced);
                cluster.FailNextAbort(settings.TransactionalId, ErrorCode.InvalidTxnState);
                return copier;
            case 4:
                cluster.ForceRebalance(settings.Group);
                return copier;
            default:
                // Another instance took the transactional.id: this one is a zombie, stops its application, and is
                // replaced, as an orchestrator would.
                cluster.FenceProducer(settings.TransactionalId);
                return copier;
        }
    }

    private static async Task<ICopier> ReplaceIfStoppedAsync(ICopier copier, InMemoryCopierBackend backend, CopierSettings settings)
    {
        if (!copier.HasStopped)
        {
            return copier;
        }

        await copier.WaitForEndAsync(TimeSpan.FromSeconds(30));
        await copier.DisposeAsync();
        return await backend.StartCopierAsync(settings);
    }

    private static MemorySample Sample(TimeSpan at)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        return new MemorySample(at, GC.GetTotalMemory(forceFullCollection: true), process.WorkingSet64);
    }
}

internal sealed record MemorySample(TimeSpan At, long ManagedBytes, long WorkingSetBytes)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{At.TotalSeconds,6:F0} s  managed heap {ManagedBytes / 1048576.0,7:F1} MB  working set {WorkingSetBytes / 1048576.0,7:F1} MB");
}

internal sealed class SoakReport
{
    public int Rounds { get; set; }

    public long RecordsCopied { get; set; }

    public long Duplicates { get; set; }

    public long Losses { get; set; }

    public long OutOfOrder { get; set; }

    public TimeSpan Elapsed { get; set; }

    public Dictionary<string, int> Faults { get; } = [];

    public List<MemorySample> Samples { get; } = [];

    /// <summary>
    /// The managed heap at the end against the first sample taken after warm-up (the second): flat means within 25%
    /// or 16 MB, whichever is larger.
    /// </summary>
    public bool MemoryFlat
    {
        get
        {
            if (Samples.Count < 3)
            {
                return true;
            }

            var baseline = Samples[1].ManagedBytes;
            return Samples[^1].ManagedBytes <= Math.Max(baseline * 1.25, baseline + (16 * 1048576.0));
        }
    }

    public bool Passed => Duplicates == 0 && Losses == 0 && OutOfOrder == 0 && MemoryFlat;

    public void Print(TextWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        writer.WriteLine();
        writer.WriteLine(string.Create(c, $"duration:        {Elapsed.TotalSeconds:F0} s, {Rounds} rounds"));
        writer.WriteLine(string.Create(c, $"records copied:  {RecordsCopied:N0} ({RecordsCopied / Math.Max(1, Elapsed.TotalSeconds):N0}/s)"));
        writer.WriteLine($"duplicates:      {Duplicates}");
        writer.WriteLine($"losses:          {Losses}");
        writer.WriteLine($"out of order:    {OutOfOrder}");
        writer.WriteLine($"faults injected: {string.Join(", ", Faults.Select(f => $"{f.Key} x{f.Value}"))}");
        writer.WriteLine("memory (after a full collection):");
        foreach (var sample in Samples)
        {
            writer.WriteLine("  " + sample);
        }

        writer.WriteLine($"memory flat:     {(MemoryFlat ? "yes" : "NO")}");
        writer.WriteLine(Passed ? "Verdict: exactly once, memory flat." : "Verdict: FAILED.");
    }
}
