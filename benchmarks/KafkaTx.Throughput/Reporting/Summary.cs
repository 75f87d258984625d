using System.Globalization;
using System.Text;

namespace KafkaTx.Throughput.Reporting;

/// <summary>The runs of one workload: every mode's runs, by round, and the ratios computed round by round.</summary>
internal sealed class WorkloadSummary(Workload workload)
{
    private readonly Dictionary<string, List<RunResult>> _runs = [];

    public Workload Workload { get; } = workload;

    public void Add(RunResult result)
    {
        if (!_runs.TryGetValue(result.Mode, out var list))
        {
            _runs[result.Mode] = list = [];
        }

        list.Add(result);
    }

    public IEnumerable<string> Modes => _runs.Keys.Order(StringComparer.Ordinal);

    public double? MedianRecordsPerSecond(string mode) => _runs.TryGetValue(mode, out var runs) ? Median(runs.Select(r => r.RecordsPerSecond)) : null;

    /// <summary>The ratio of two modes' throughput in each round (runs alternate, so a round's pair ran side by side).</summary>
    public (double Median, double Min, double Max)? Ratio(string numerator, string denominator)
    {
        if (!_runs.TryGetValue(numerator, out var top) || !_runs.TryGetValue(denominator, out var bottom))
        {
            return null;
        }

        var ratios = top.Zip(bottom, (t, b) => t.RecordsPerSecond / b.RecordsPerSecond).ToList();
        return (Median(ratios), ratios.Min(), ratios.Max());
    }

    public string Table(IReadOnlyDictionary<string, string> names)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{Workload.Shape}, {Size(Workload.RecordSize)} records:");
        text.AppendLine("| mode | records/s (median) | spread | MB/s | commit p50 ms | commit p99 ms | allocated B/record |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var mode in Modes)
        {
            var runs = _runs[mode];
            var median = Median(runs.Select(r => r.RecordsPerSecond));
            var p50 = runs.Select(r => r.CommitP50).Where(v => v.HasValue).Select(v => v!.Value).ToList();
            var p99 = runs.Select(r => r.CommitP99).Where(v => v.HasValue).Select(v => v!.Value).ToList();
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| ({mode}) {names[mode]} | {median:N0} | {runs.Min(r => r.RecordsPerSecond):N0}-{runs.Max(r => r.RecordsPerSecond):N0} | {Median(runs.Select(r => r.MegabytesPerSecond)):F1} | {(p50.Count > 0 ? Median(p50).ToString("F1", CultureInfo.InvariantCulture) : "-")} | {(p99.Count > 0 ? Median(p99).ToString("F1", CultureInfo.InvariantCulture) : "-")} | {Median(runs.Select(r => r.AllocatedPerRecord)):N0} |");
        }

        foreach (var (top, bottom) in new[] { ("b", "a"), ("c", "d"), ("b", "e") })
        {
            if (Ratio(top, bottom) is { } ratio)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"({top})/({bottom}) = {ratio.Median:F2} (rounds {ratio.Min:F2}-{ratio.Max:F2})  ");
            }
        }

        return text.ToString();
    }

    public static string Size(int bytes) => bytes >= 1024 && bytes % 1024 == 0 ? $"{bytes / 1024} KB" : $"{bytes} B";

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
