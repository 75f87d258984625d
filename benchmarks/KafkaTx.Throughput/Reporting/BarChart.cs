using System.Globalization;
using System.Text;

namespace KafkaTx.Throughput.Reporting;

/// <summary>
/// Records per second of each case as a horizontal bar (the median, logarithmic), with a line across the rounds'
/// spread, cases grouped under headings, as a self-contained SVG image.
/// </summary>
internal static class BarChart
{
    /// <summary>A bar: its label, the median records per second, and the slowest and fastest rounds'.</summary>
    public sealed record Bar(string Label, double Median, double Low, double High);

    public static string Render(string title, IReadOnlyList<(string Heading, IReadOnlyList<Bar> Bars)> groups)
    {
        const int Width = 960, Left = 380, Right = 120, Top = 50, Row = 24, HeadingRow = 28, Bottom = 50;
        var values = groups.SelectMany(g => g.Bars).SelectMany(b => new[] { b.Low, b.High, b.Median }).Where(v => v > 0).DefaultIfEmpty(1).ToList();
        var low = Math.Floor(Math.Log10(values.Min()));
        var high = Math.Max(Math.Ceiling(Math.Log10(values.Max())), low + 1);
        var height = Top + Bottom + groups.Sum(g => HeadingRow + (g.Bars.Count * Row));
        double X(double v) => Left + ((Math.Log10(Math.Max(v, Math.Pow(10, low))) - low) / (high - low) * (Width - Left - Right));
        string F(double v) => v.ToString("F1", CultureInfo.InvariantCulture);

        var svg = new StringBuilder();
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<svg xmlns="http://www.w3.org/2000/svg" width="{Width}" height="{height}" font-family="sans-serif" font-size="12">""");
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<rect width="{Width}" height="{height}" fill="white"/>""");
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="10" y="22" font-size="14" font-weight="bold">{Escape(title)}</text>""");
        for (var power = low; power <= high; power++)
        {
            var x = F(X(Math.Pow(10, power)));
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<line x1="{x}" y1="{Top - 8}" x2="{x}" y2="{height - Bottom + 4}" stroke="#ddd"/>""");
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{x}" y="{height - Bottom + 20}" text-anchor="middle">{Math.Pow(10, power):N0}</text>""");
        }

        svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{(Left + Width - Right) / 2}" y="{height - 12}" text-anchor="middle">records per second (median of the rounds, log scale; the thin line spans the rounds)</text>""");
        var y = Top;
        foreach (var (heading, bars) in groups)
        {
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="10" y="{y + 18}" font-weight="bold">{Escape(heading)}</text>""");
            y += HeadingRow;
            foreach (var bar in bars)
            {
                var middle = y + (Row / 2);
                svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{Left - 8}" y="{middle + 4}" text-anchor="end">{Escape(bar.Label)}</text>""");
                svg.AppendLine(CultureInfo.InvariantCulture, $"""<rect x="{Left}" y="{y + 4}" width="{F(X(bar.Median) - Left)}" height="{Row - 8}" fill="#1f77b4"/>""");
                svg.AppendLine(CultureInfo.InvariantCulture, $"""<line x1="{F(X(bar.Low))}" y1="{middle}" x2="{F(X(bar.High))}" y2="{middle}" stroke="#d62728" stroke-width="2"/>""");
                svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{F(Math.Max(X(bar.Median), X(bar.High)) + 6)}" y="{middle + 4}">{bar.Median:N0}/s</text>""");
                y += Row;
            }
        }

        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    private static string Escape(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
