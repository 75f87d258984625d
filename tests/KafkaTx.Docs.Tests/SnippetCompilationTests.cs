using System.Text;
using KafkaTx.Docs.Tests.Snippets;

namespace KafkaTx.Docs.Tests;

/// <summary>Every C# block a user can copy from the READMEs and docs/ builds as shown, with its usings.</summary>
public sealed class SnippetCompilationTests
{
    /// <summary>The blocks, one case each, named file:line.</summary>
    public static TheoryData<string> Snippets() => [.. DocumentationFiles.Snippets().Select(s => s.ToString())];

    [Theory]
    [MemberData(nameof(Snippets))]
    public void Compiles_as_shown(string fileAndLine)
    {
        var snippet = DocumentationFiles.Snippets().Single(s => s.ToString() == fileAndLine);
        var errors = SnippetCompiler.Errors(snippet);

        errors.Should().BeEmpty(Report(snippet, errors));
    }

    [Fact]
    public void Finds_the_snippets_of_the_readme_and_the_docs()
    {
        var files = DocumentationFiles.Snippets().Select(s => s.File).Distinct().ToList();

        files.Should().Contain(["README.md", "docs/configuration.md", "src/KafkaTx/README.md"]);
    }

    [Fact]
    public void A_snippet_compiles_only_with_its_usings()
    {
        // Guards the test itself: the surroundings must not import KafkaTx or Confluent.Kafka for the snippet.
        const string Work = """
            await kafka.ExecuteAsync(tx => tx.Produce("t", new Message<string, string> { Key = "k", Value = "v" }), cancellationToken);
            """;
        var without = new MarkdownSnippet("inline", 1, Work);
        var with = new MarkdownSnippet("inline", 1, "using Confluent.Kafka;\nusing KafkaTx;\n" + Work);

        SnippetCompiler.Errors(without).Should().NotBeEmpty();
        SnippetCompiler.Errors(with).Should().BeEmpty();
    }

    private static string Report(MarkdownSnippet snippet, IReadOnlyList<Microsoft.CodeAnalysis.Diagnostic> errors)
    {
        var report = new StringBuilder().AppendLine(System.Globalization.CultureInfo.InvariantCulture, $"{snippet} does not compile as shown:");
        foreach (var error in errors)
        {
            var line = error.Location.IsInSource ? error.Location.GetLineSpan().StartLinePosition.Line + snippet.Line : 0;
            report.AppendLine(System.Globalization.CultureInfo.InvariantCulture, $"  {snippet.File}:{line}: {error.Id} {error.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}");
        }

        return report.ToString();
    }
}
