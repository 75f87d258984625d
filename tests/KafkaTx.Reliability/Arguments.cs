using System.Globalization;

namespace KafkaTx.Reliability;

/// <summary>"--name value" command-line options.</summary>
internal sealed class Arguments(string[] args)
{
    public string Command => args.Length > 0 ? args[0] : string.Empty;

    public string? Optional(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;

    public string Required(string name) => Optional(name) ?? throw new ArgumentException($"{name} is required.");

    public bool Flag(string name) => Array.IndexOf(args, name) >= 0;

    public int Int(string name, int fallback) => Optional(name) is { } value ? int.Parse(value, NumberStyles.Integer, CultureInfo.InvariantCulture) : fallback;

    public TimeSpan Duration(string name, TimeSpan fallback) => Optional(name) is { } value ? TimeSpan.Parse(value, CultureInfo.InvariantCulture) : fallback;
}
