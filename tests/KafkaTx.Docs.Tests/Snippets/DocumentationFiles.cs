namespace KafkaTx.Docs.Tests.Snippets;

/// <summary>The Markdown files a user reads: the READMEs (repository, packages, samples) and docs/.</summary>
public static class DocumentationFiles
{
    /// <summary>The repository's root: the folder holding KafkaTx.sln, found upwards from the test's output.</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>Every C# block of every documentation file, in a stable order.</summary>
    public static IEnumerable<MarkdownSnippet> Snippets() =>
        Files().SelectMany(path => MarkdownSnippet.Read(path, Path.GetRelativePath(RepositoryRoot, path).Replace('\\', '/')));

    private static IEnumerable<string> Files()
    {
        var files = new List<string> { Path.Combine(RepositoryRoot, "README.md") };
        files.AddRange(Directory.GetFiles(Path.Combine(RepositoryRoot, "docs"), "*.md", SearchOption.AllDirectories));
        foreach (var folder in new[] { "src", "samples" })
        {
            files.AddRange(Directory.GetFiles(Path.Combine(RepositoryRoot, folder), "README.md", SearchOption.AllDirectories)
                .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                    && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)));
        }

        return files.Order(StringComparer.Ordinal);
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "KafkaTx.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No KafkaTx.sln above {AppContext.BaseDirectory}: run the tests from the repository.");
    }
}
