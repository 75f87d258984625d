using System.Text.RegularExpressions;

namespace KafkaTx.Tests.Layout;

/// <summary>
/// The layout rules of CONTRIBUTING.md, checked on the sources: small files, no type split over partial files, and
/// one namespace rule (public types in the package's root namespace, internal types in their folder's).
/// </summary>
public partial class CodeLayoutTests
{
    private const int MaxLines = 350;

    private static readonly string Root = FindRoot();

    public static TheoryData<string> Packages => new() { "KafkaTx", "KafkaTx.Testing" };

    [Theory]
    [MemberData(nameof(Packages))]
    public void No_source_file_is_longer_than_a_type_should_be(string package)
    {
        var tooLong = Sources(package)
            .Select(file => (file.Relative, Lines: File.ReadAllLines(file.Path).Length))
            .Where(f => f.Lines > MaxLines)
            .Select(f => $"{f.Relative} ({f.Lines} lines)");

        tooLong.Should().BeEmpty($"a file holds one small type of at most ~{MaxLines} lines (CONTRIBUTING.md)");
    }

    [Theory]
    [MemberData(nameof(Packages))]
    public void No_type_is_split_over_partial_files(string package)
    {
        // Source generators need partial declarations (the LoggerMessage log, generated regexes): one file each is fine.
        var declarations = Sources(package)
            .SelectMany(file => PartialType().Matches(File.ReadAllText(file.Path)).Select(m => (Type: m.Groups["name"].Value, file.Relative)))
            .GroupBy(d => d.Type)
            .Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(d => d.Relative))}");

        declarations.Should().BeEmpty("a type's state is owned by one file (CONTRIBUTING.md)");
    }

    [Theory]
    [MemberData(nameof(Packages))]
    public void Public_types_are_in_the_root_namespace_and_internal_types_in_their_folders(string package)
    {
        var wrong = new List<string>();
        foreach (var (path, relative) in Sources(package))
        {
            var text = File.ReadAllText(path);
            var declared = FileScopedNamespace().Match(text).Groups["ns"].Value;
            var folder = Path.GetDirectoryName(relative)!.Replace(Path.DirectorySeparatorChar, '.');
            var folderNamespace = folder.Length == 0 ? package : package + "." + folder;
            var publicType = PublicTopLevelType().Match(text);
            string[] allowed = !publicType.Success
                ? [folderNamespace]
                : publicType.Groups["static"].Success && ExtensionMethod().IsMatch(text)
                    ? ["KafkaTx", package, "Microsoft.Extensions.DependencyInjection"] // extensions go where the extended type is
                    : [package];
            if (!allowed.Contains(declared))
            {
                wrong.Add($"{relative}: namespace {declared}, expected {string.Join(" or ", allowed)}");
            }
        }

        wrong.Should().BeEmpty("public types live in the package's root namespace and internal ones in their folder's (CONTRIBUTING.md)");
    }

    private static IEnumerable<(string Path, string Relative)> Sources(string package)
    {
        var directory = Path.Combine(Root, "src", package);
        return Directory.EnumerateFiles(directory, "*.cs", SearchOption.AllDirectories)
            .Select(path => (Path: path, Relative: Path.GetRelativePath(directory, path)))
            .Where(f => !f.Relative.StartsWith("obj", StringComparison.Ordinal) && !f.Relative.StartsWith("bin", StringComparison.Ordinal))
            .OrderBy(f => f.Relative, StringComparer.Ordinal);
    }

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "KafkaTx.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("KafkaTx.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"\bpartial\s+(?:class|struct|record|interface)\s+(?<name>\w+)")]
    private static partial Regex PartialType();

    [GeneratedRegex(@"^namespace\s+(?<ns>[\w.]+)\s*;", RegexOptions.Multiline)]
    private static partial Regex FileScopedNamespace();

    [GeneratedRegex(@"^public\s+(?:sealed\s+|abstract\s+|readonly\s+|(?<static>static\s+)|partial\s+)*(?:class|interface|record|struct|enum|delegate)\b", RegexOptions.Multiline)]
    private static partial Regex PublicTopLevelType();

    [GeneratedRegex(@"\(\s*this\s+")]
    private static partial Regex ExtensionMethod();
}
