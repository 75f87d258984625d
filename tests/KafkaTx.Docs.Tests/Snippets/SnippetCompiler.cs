using System.Collections.Immutable;
using KafkaTx.Docs.Tests.Ambient;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace KafkaTx.Docs.Tests.Snippets;

/// <summary>
/// Compiles a snippet the way it would build in a new project: nullable on, the SDK's implicit usings and nothing else.
/// A snippet must bring its own <c>using</c>s for KafkaTx, Confluent.Kafka and Microsoft.Extensions; only the names a
/// snippet takes from the reader's surroundings (<c>builder</c>, an injected <c>kafka</c>, the reader's own
/// <c>Order</c> type) come from <see cref="SnippetContext"/>.
/// </summary>
public static class SnippetCompiler
{
    // Microsoft.NET.Sdk's implicit usings: what every new console, worker or library project has.
    private const string ConsoleUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    // Microsoft.NET.Sdk.Web adds these: granted only to a snippet that is a web application.
    private const string WebUsings = """
        global using System.Net.Http.Json;
        global using Microsoft.AspNetCore.Builder;
        global using Microsoft.AspNetCore.Hosting;
        global using Microsoft.AspNetCore.Http;
        global using Microsoft.AspNetCore.Routing;
        global using Microsoft.Extensions.Configuration;
        global using Microsoft.Extensions.DependencyInjection;
        global using Microsoft.Extensions.Hosting;
        global using Microsoft.Extensions.Logging;
        """;

    private const string ContextUsings = $"""
        global using static {nameof(KafkaTx)}.{nameof(Docs)}.{nameof(Tests)}.{nameof(Ambient)}.{nameof(SnippetContext)};
        global using {nameof(KafkaTx)}.{nameof(Docs)}.{nameof(Tests)}.{nameof(Ambient)}.ReaderTypes;
        """;

    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(LoadReferences);

    /// <summary>The compiler's errors for <paramref name="snippet"/>; empty when it builds.</summary>
    public static IReadOnlyList<Diagnostic> Errors(MarkdownSnippet snippet)
    {
        var code = SyntaxFactory.ParseSyntaxTree(snippet.Code, ParseOptions, path: snippet.File);
        // A web application's snippet: it builds one, or maps endpoints on one (the reader's Program.cs of Sdk.Web).
        var isWebApplication = snippet.Code.Contains("WebApplication.", StringComparison.Ordinal)
            || snippet.Code.Contains("app.Map", StringComparison.Ordinal);
        var trees = new List<SyntaxTree>
        {
            code,
            SyntaxFactory.ParseSyntaxTree(ConsoleUsings, ParseOptions),
            SyntaxFactory.ParseSyntaxTree(ContextUsings, ParseOptions),
        };
        if (isWebApplication)
        {
            trees.Add(SyntaxFactory.ParseSyntaxTree(WebUsings, ParseOptions));
        }

        var hasTopLevelStatements = code.GetCompilationUnitRoot().Members.OfType<GlobalStatementSyntax>().Any();
        var options = new CSharpCompilationOptions(
            hasTopLevelStatements ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary,
            nullableContextOptions: NullableContextOptions.Enable);
        var compilation = CSharpCompilation.Create("Snippet", trees, References.Value, options);
        return compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
    }

    // Everything the test process runs with: the shared frameworks (ASP.NET Core included) and the packages
    // (KafkaTx, KafkaTx.Testing, Confluent.Kafka, OpenTelemetry), as a user's project referencing them would.
    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        var paths = ((string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Append(typeof(SnippetContext).Assembly.Location)
            .Where(p => !string.IsNullOrEmpty(p) && File.Exists(p))
            .DistinctBy(Path.GetFileName, StringComparer.OrdinalIgnoreCase);
        return [.. paths.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))];
    }
}
