using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace KafkaTx.Tests.Layout;

/// <summary>What a package page shows: the project and repository addresses, and a README whose links work there (only absolute ones do).</summary>
public partial class PackageMetadataTests
{
    private static readonly string Root = FindRoot();

    public static TheoryData<string> Packages => new() { "KafkaTx", "KafkaTx.Testing" };

    [Theory]
    [InlineData("PackageProjectUrl")]
    [InlineData("RepositoryUrl")]
    public void The_packages_name_their_project_and_repository_address(string property)
    {
        var props = XDocument.Load(Path.Combine(Root, "src", "Directory.Build.props"));

        var value = props.Descendants(property).Select(e => e.Value).SingleOrDefault();

        value.Should().NotBeNull($"{property} is shown on the package page");
        Uri.TryCreate(value, UriKind.Absolute, out var uri).Should().BeTrue();
        uri!.Scheme.Should().Be("https");
    }

    [Theory]
    [MemberData(nameof(Packages))]
    public void The_package_readme_links_are_absolute(string package)
    {
        var readme = File.ReadAllText(Path.Combine(Root, "src", package, "README.md"));

        var links = MarkdownLink().Matches(readme).Select(m => m.Groups["target"].Value).ToList();

        links.Should().NotBeEmpty("the README points to the documentation");
        links.Where(target => !target.StartsWith("https://", StringComparison.Ordinal)).Should().BeEmpty("a relative link is broken on a package page");
    }

    [Theory]
    [MemberData(nameof(Packages))]
    public void The_package_readme_links_the_documentation_it_mentions(string package)
    {
        var readme = File.ReadAllText(Path.Combine(Root, "src", package, "README.md"));

        // With every link taken out, nothing may still name the docs: text that does so without a link leaves the reader on the package page.
        var outsideLinks = WholeLink().Replace(readme, string.Empty);

        outsideLinks.Should().NotContain("docs/");
        readme.Should().Contain("](https://github.com/kafkatx/kafkatx/");
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

    [GeneratedRegex(@"\]\((?<target>[^)\s]+)\)")]
    private static partial Regex MarkdownLink();

    [GeneratedRegex(@"\[[^\]]*\]\([^)]*\)")]
    private static partial Regex WholeLink();
}
