using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace KafkaTx.Options;

/// <summary>
/// Fills in <see cref="KafkaTransactionsOptions.BootstrapServers"/> when neither code nor the producer's configuration
/// section set it (null, empty or white space all count as unset): from <c>KAFKATX_BOOTSTRAP_SERVERS</c> in the
/// application's configuration (where a host puts environment variables, command-line arguments and appsettings.json),
/// else from the environment variable itself (an application without a host registers no configuration).
/// </summary>
/// <remarks>
/// A key present in the configuration decides, even when empty (<c>KAFKATX_BOOTSTRAP_SERVERS=</c> says "no broker"):
/// the environment is read only when the configuration does not have the key. A post-configuration, registered
/// before any builder's own, so that the in-memory fallback of KafkaTx.Testing sees the servers it found.
/// </remarks>
internal sealed class BootstrapServersFromConfiguration(IConfiguration? configuration, Func<string, string?> environment)
    : IPostConfigureOptions<KafkaTransactionsOptions>
{
    public BootstrapServersFromConfiguration(IConfiguration? configuration)
        : this(configuration, Environment.GetEnvironmentVariable)
    {
    }

    public void PostConfigure(string? name, KafkaTransactionsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!string.IsNullOrWhiteSpace(options.BootstrapServers))
        {
            return; // set explicitly: it always wins
        }

        var servers = configuration?[KafkaTransactionsOptions.BootstrapServersEnvironmentVariable]
            ?? environment(KafkaTransactionsOptions.BootstrapServersEnvironmentVariable);
        options.BootstrapServers = string.IsNullOrWhiteSpace(servers) ? null : servers.Trim();
    }
}
