using System.Text;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>docs/state-machine.md holds the transition table of <see cref="TransactionTransitions"/>, cell for cell.</summary>
public class StateMachineDocsTests
{
    private const string TableHeading = "## Transition table";
    private const string NextStepHeading = "## Next steps";

    [Fact]
    public void The_documented_transition_table_is_the_code_s()
    {
        var documented = Rows(Section(TableHeading), columns: 3).ToDictionary(r => (r[0], r[1]), r => r[2]);

        var expected = new StringBuilder();
        var mismatches = new List<string>();
        foreach (var call in Enum.GetValues<TransactionCall>())
        {
            foreach (var state in Enum.GetValues<TransactionState>())
            {
                var operation = TransactionTransitions.Operation(call);
                var result = Cell(state, call);
                expected.AppendLine(System.Globalization.CultureInfo.InvariantCulture, $"| `{operation}` | {state} | {result} |");
                if (!documented.Remove((operation, state.ToString()), out var found) || found != result)
                {
                    mismatches.Add($"{operation} in {state}: documented '{found}', the table says '{result}'");
                }
            }
        }

        mismatches.AddRange(documented.Keys.Select(k => $"{k.Item1} in {k.Item2}: documented, but no such pair"));
        mismatches.Should().BeEmpty($"docs/state-machine.md must hold the table; its rows are:\n{expected}");
    }

    [Fact]
    public void The_documented_next_steps_are_the_code_s()
    {
        var documented = Rows(Section(NextStepHeading), columns: 2).ToDictionary(r => r[0], r => r[1]);

        foreach (var state in Enum.GetValues<TransactionState>().Where(s => TransactionTransitions.NextStep(s).Length > 0))
        {
            documented.Should().ContainKey(state.ToString()).WhoseValue.Should().Be(TransactionTransitions.NextStep(state));
        }
    }

    /// <summary>A cell as the doc writes it: the end states, or the refusal (the state's next step as a placeholder).</summary>
    private static string Cell(TransactionState state, TransactionCall call)
    {
        var cell = TransactionTransitions.For(state, call);
        return cell.Kind switch
        {
            TransitionKind.Accepted => string.Join(", ", cell.EndsIn),
            TransitionKind.Busy => "refused: the gate is held (another transaction is open or another call is running)",
            TransitionKind.Terminal => "refused: terminal",
            _ => "refused: " + (TransactionTransitions.NextStep(state) is { Length: > 0 } next ? cell.Refusal!.Replace(next, "{next step}", StringComparison.Ordinal) : cell.Refusal),
        };
    }

    private static IEnumerable<string[]> Rows(string section, int columns) =>
        section.Split('\n')
            .Select(line => line.Trim())
            .Where(line => line.StartsWith('|') && !line.StartsWith("| ---", StringComparison.Ordinal))
            .Select(line => line.Trim('|').Split('|').Select(c => c.Trim().Trim('`')).ToArray())
            .Where(cells => cells.Length == columns)
            .Skip(1); // the header

    private static string Section(string heading)
    {
        var text = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "state-machine.md")).Replace("\r\n", "\n", StringComparison.Ordinal);
        var start = text.IndexOf("\n" + heading + "\n", StringComparison.Ordinal);
        start.Should().BeGreaterThan(0, $"docs/state-machine.md must have a section '{heading}'");
        var end = text.IndexOf("\n## ", start + heading.Length + 1, StringComparison.Ordinal);
        return end < 0 ? text[start..] : text[start..end];
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "KafkaTx.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("No KafkaTx.sln above " + AppContext.BaseDirectory);
    }
}
