using System.Reflection;
using System.Text.RegularExpressions;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Tests.Telemetry;

/// <summary>docs/observability.md lists every log event and instrument, and log event ids are unique.</summary>
public partial class ObservabilityDocsTests
{
    private static readonly string Doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "observability.md"));

    private static IEnumerable<(int Id, string Name)> LogEvents() =>
        typeof(KafkaTxInstrumentation).Assembly.GetType("KafkaTx.Telemetry.Log", throwOnError: true)!
            .GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(m => m.Attribute is not null)
            .Select(m => (m.Attribute!.EventId, m.Method.Name));

    [Fact]
    public void Every_log_event_has_its_own_id_and_is_listed_with_it()
    {
        var events = LogEvents().ToList();

        events.Should().HaveCountGreaterThan(40);
        events.Select(e => e.Id).Should().OnlyHaveUniqueItems();
        foreach (var (id, name) in events)
        {
            Doc.Should().Contain($"| {id} | `{name}` |", $"log event {id} ({name}) is documented");
        }
    }

    [Fact]
    public void Every_instrument_is_listed()
    {
        using var instrumentation = new KafkaTxInstrumentation();
        var names = new List<string>();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (ReferenceEquals(instrument.Meter, instrumentation.Meter))
                {
                    names.Add(instrument.Name);
                }
            },
        };
        listener.Start();

        names.Should().HaveCountGreaterThan(15);
        foreach (var name in names)
        {
            Doc.Should().Contain($"| `{name}` |", $"instrument {name} is documented");
        }

        DocumentedInstruments().Should().BeSubsetOf(names, "the doc lists no instrument that does not exist");
    }

    private static IEnumerable<string> DocumentedInstruments() =>
        InstrumentRow().Matches(Doc).Select(m => m.Groups[1].Value);

    [GeneratedRegex(@"^\| `(kafkatx\.[a-z._]+)` \| (?:counter|histogram|observable gauge) \|", RegexOptions.Multiline)]
    private static partial Regex InstrumentRow();

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "KafkaTx.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("KafkaTx.sln not found above " + AppContext.BaseDirectory);
    }
}
