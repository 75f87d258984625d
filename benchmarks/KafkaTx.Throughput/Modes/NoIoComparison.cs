using System.Globalization;
using System.Text;
using KafkaTx.Throughput.Backends;

namespace KafkaTx.Throughput.Modes;

/// <summary>
/// The no-I/O comparison of <c>parallel</c>: the plain copy handler in key order at MaxConcurrency 1 (A) and 16 (B).
/// The input is seeded once and each run reads it with a group of its own. After one unrecorded pair (the JIT's tiers
/// settle on both paths), every round runs A and B back to back, the first of the pair alternating from round to round
/// (AB, BA, AB, ...), so that a load that comes and goes on a shared machine weighs on both runs of a round alike. The
/// ratio is computed per round (B's records per second over A's, that is A's seconds over B's) and its median over the
/// rounds is reported with the rounds' spread. Each run also reports the process's CPU time per record and the bytes
/// it allocated per record, from its first record handled to its last committed: CPU time moves far less with other
/// load than elapsed time, and allocations not at all.
/// </summary>
internal static class NoIoComparison
{
    /// <summary>Runs the comparison and appends its table; returns each case's seconds, round by round (for the chart).</summary>
    public static async Task<List<double>[]> RunAsync(ThroughputBackend backend, ThroughputSettings settings, ParallelRun.ParallelCase[] cases, StringBuilder table, CancellationToken cancellationToken)
    {
        var input = "parallel-in-" + Guid.NewGuid().ToString("N")[..12];
        backend.CreateTopic(input, cases[0].Partitions);
        ParallelRun.Seed(backend, cases[0], input); // both cases read the same records: 1 partition, the same keys
        if (settings.Warmup)
        {
            foreach (var warmup in cases)
            {
                await ParallelRun.RunOnceAsync(backend, settings, warmup, cancellationToken, input);
            }

            Console.WriteLine("[parallel] warmed up the no-I/O cases.");
        }

        var seconds = cases.Select(_ => new List<double>()).ToArray();
        var cpu = cases.Select(_ => new List<double>()).ToArray();
        var allocated = cases.Select(_ => new List<double>()).ToArray();
        var verdicts = cases.Select(_ => new List<string>()).ToArray();
        var rounds = settings.NoIoRounds;
        for (var round = 1; round <= rounds && !cancellationToken.IsCancellationRequested; round++)
        {
            for (var j = 0; j < cases.Length; j++)
            {
                var i = (j + round - 1) % cases.Length;
                Console.Write($"[parallel no-io, round {round}/{rounds}] {cases[i].Name}: ");
                var (elapsed, cpuTime, bytes, verdict) = await ParallelRun.RunOnceAsync(backend, settings, cases[i], cancellationToken, input);
                seconds[i].Add(elapsed.TotalSeconds);
                cpu[i].Add(cpuTime.TotalMicroseconds / cases[i].Records);
                allocated[i].Add((double)bytes / cases[i].Records);
                verdicts[i].Add(verdict);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{elapsed.TotalSeconds:F2} s, {cases[i].Records / elapsed.TotalSeconds:N0} records/s, {cpu[i][^1]:F2} us CPU and {allocated[i][^1]:F0} B allocated per record; {verdict}"));
            }
        }

        backend.DeleteTopicData(input, cases[0].Partitions);
        var complete = Math.Min(seconds[0].Count, seconds[1].Count); // a cancelled round may have run one case only
        var ratios = Enumerable.Range(0, complete).Select(r => seconds[0][r] / seconds[1][r]).ToList();
        var cpuRatios = Enumerable.Range(0, complete).Select(r => cpu[0][r] / cpu[1][r]).ToList();
        table.AppendLine(CultureInfo.InvariantCulture, $"{cases[0].Records:N0} records, the plain copy handler (no I/O), {rounds} rounds (each: both cases back to back, alternating which runs first):");
        table.AppendLine("| case | seconds (median) | spread | records/s | CPU per record (median, spread) | allocated per record (median) | output (read_committed) |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
        for (var i = 0; i < cases.Length; i++)
        {
            var median = ParallelRun.Median(seconds[i]);
            table.AppendLine(CultureInfo.InvariantCulture, $"| {cases[i].Name} | {median:F2} | {Spread(seconds[i])} | {cases[i].Records / median:N0} | {ParallelRun.Median(cpu[i]):F2} us ({Spread(cpu[i])}) | {ParallelRun.Median(allocated[i]):F0} B | {string.Join("; ", verdicts[i].Distinct())} |");
        }

        table.AppendLine(CultureInfo.InvariantCulture, $"MaxConcurrency 16 / MaxConcurrency 1, records per second: median of the per-round ratios {ParallelRun.Median(ratios):F2} (rounds {Spread(ratios)}; target: at least 0.9)");
        table.AppendLine(CultureInfo.InvariantCulture, $"MaxConcurrency 1 / MaxConcurrency 16, CPU per record: median of the per-round ratios {ParallelRun.Median(cpuRatios):F2} (rounds {Spread(cpuRatios)})");
        table.AppendLine(CultureInfo.InvariantCulture, $"Per-round ratios (records per second): {string.Join(", ", ratios.Select(r => r.ToString("F2", CultureInfo.InvariantCulture)))}");
        return seconds;
    }

    private static string Spread(List<double> values) =>
        values.Count == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{values.Min():F2}-{values.Max():F2}");
}
