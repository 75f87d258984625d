using System.Globalization;
using System.Text;

namespace KafkaTx.Throughput.Reporting;

/// <summary>Throughput against records per transaction, one line per mode, both axes logarithmic, as a self-contained SVG image.</summary>
internal static class SvgChart
{
    private static readonly string[] Colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#7f7f7f"];

    public static string Render(string title, IReadOnlyList<WorkloadSummary> summaries, IReadOnlyDictionary<string, string> names)
    {
        const int Width = 760, Height = 440, Left = 80, Right = 230, Top = 40, Bottom = 60;
        var points = summaries.Where(s => s.Workload.RecordsPerTransaction.HasValue).OrderBy(s => s.Workload.RecordsPerTransaction).ToList();
        var xs = points.Select(s => Math.Log10(s.Workload.RecordsPerTransaction!.Value)).ToList();
        var values = points.SelectMany(s => s.Modes.Select(m => s.MedianRecordsPerSecond(m) ?? 0)).Where(v => v > 0).DefaultIfEmpty(1).ToList();
        var yLow = Math.Floor(Math.Log10(values.Min()));
        var yHigh = Math.Max(Math.Ceiling(Math.Log10(values.Max())), yLow + 1);
        var (xMin, xMax) = xs.Count == 0 ? (0d, 1d) : (xs.Min(), Math.Max(xs.Max(), xs.Min() + 1));
        double X(double v) => Left + ((v - xMin) / (xMax - xMin) * (Width - Left - Right));
        double Y(double v) => Height - Bottom - ((Math.Log10(Math.Max(v, 1)) - yLow) / (yHigh - yLow) * (Height - Top - Bottom));
        string F(double v) => v.ToString("F1", CultureInfo.InvariantCulture);

        var svg = new StringBuilder();
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<svg xmlns="http://www.w3.org/2000/svg" width="{Width}" height="{Height}" font-family="sans-serif" font-size="12">""");
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<rect width="{Width}" height="{Height}" fill="white"/>""");
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{Left}" y="22" font-size="14" font-weight="bold">{Escape(title)}</text>""");
        for (var power = yLow; power <= yHigh; power++)
        {
            var value = Math.Pow(10, power);
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<line x1="{Left}" y1="{F(Y(value))}" x2="{Width - Right}" y2="{F(Y(value))}" stroke="#ddd"/>""");
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{Left - 8}" y="{F(Y(value) + 4)}" text-anchor="end">{value:N0}</text>""");
        }

        foreach (var summary in points)
        {
            var x = X(Math.Log10(summary.Workload.RecordsPerTransaction!.Value));
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{F(x)}" y="{Height - Bottom + 18}" text-anchor="middle">{summary.Workload.RecordsPerTransaction:N0}</text>""");
        }

        svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{(Left + Width - Right) / 2}" y="{Height - 18}" text-anchor="middle">records per transaction (log scale)</text>""");
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="18" y="{(Top + Height - Bottom) / 2}" text-anchor="middle" transform="rotate(-90 18 {(Top + Height - Bottom) / 2})">records per second (median, log scale)</text>""");
        var modes = points.SelectMany(s => s.Modes).Distinct().Order(StringComparer.Ordinal).ToList();
        for (var m = 0; m < modes.Count; m++)
        {
            var mode = modes[m];
            var color = Colors[m % Colors.Length];
            var line = points.Where(s => s.MedianRecordsPerSecond(mode).HasValue)
                .Select(s => $"{F(X(Math.Log10(s.Workload.RecordsPerTransaction!.Value)))},{F(Y(s.MedianRecordsPerSecond(mode)!.Value))}").ToList();
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<polyline fill="none" stroke="{color}" stroke-width="2" points="{string.Join(' ', line)}"/>""");
            foreach (var point in line)
            {
                var xy = point.Split(',');
                svg.AppendLine(CultureInfo.InvariantCulture, $"""<circle cx="{xy[0]}" cy="{xy[1]}" r="3" fill="{color}"/>""");
            }

            var legendY = Top + 10 + (m * 20);
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<line x1="{Width - Right + 15}" y1="{legendY}" x2="{Width - Right + 35}" y2="{legendY}" stroke="{color}" stroke-width="2"/>""");
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{Width - Right + 40}" y="{legendY + 4}">({mode}) {Escape(names[mode])}</text>""");
        }

        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    private static string Escape(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
