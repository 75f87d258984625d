namespace KafkaTx.Docs.Tests.Snippets;

/// <summary>One fenced C# block of a Markdown file, with where it starts so that a failure points at it.</summary>
public sealed record MarkdownSnippet(string File, int Line, string Code)
{
    // The fence languages GitHub renders as C#.
    private static readonly string[] CSharpFences = ["```csharp", "```cs", "```c#"];

    /// <summary>The C# blocks of <paramref name="path"/>, named by <paramref name="relativePath"/>.</summary>
    public static IEnumerable<MarkdownSnippet> Read(string path, string relativePath)
    {
        var lines = System.IO.File.ReadAllLines(path);
        for (var i = 0; i < lines.Length; i++)
        {
            var fence = lines[i].Trim();
            if (!CSharpFences.Contains(fence, StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }

            var start = i + 1;
            var end = start;
            while (end < lines.Length && !lines[end].TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                end++;
            }

            yield return new MarkdownSnippet(relativePath, start + 1, string.Join('\n', lines[start..end]));
            i = end;
        }
    }

    /// <summary>What the test runner shows for this case.</summary>
    public override string ToString() => $"{File}:{Line}";
}
