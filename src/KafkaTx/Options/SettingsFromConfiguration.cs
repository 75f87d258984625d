using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace KafkaTx.Options;

/// <summary>
/// Fills in what neither code nor the producer's configuration section set (null, empty or white space all count as
/// unset): <see cref="KafkaTransactionsOptions.InstanceId"/> from <c>KAFKATX_INSTANCE_ID</c> and
/// <see cref="KafkaTransactionsOptions.BootstrapServers"/> from <c>KAFKATX_BOOTSTRAP_SERVERS</c>, read from the
/// application's configuration (where a host puts environment variables, command-line arguments and appsettings.json),
/// else from the environment variable itself (an application without a host registers no configuration).
/// </summary>
/// <remarks>
/// A key present in the configuration decides, even when empty (<c>KAFKATX_BOOTSTRAP_SERVERS=</c> says "no broker"):
/// the environment is read only when the configuration does not have the key. A post-configuration, registered before
/// any builder's own, so that it sees the options after every <c>Configure</c> and binding, and so that the in-memory
/// fallback of KafkaTx.Testing sees the servers it found. It writes what it found into the options, so that
/// validation, logs and <see cref="KafkaTransactionsOptions.ResolveTransactionalId"/> all see one value.
/// </remarks>
internal sealed class SettingsFromConfiguration(IConfiguration? configuration, Func<string, string?> environment)
    : IPostConfigureOptions<KafkaTransactionsOptions>
{
    public SettingsFromConfiguration(IConfiguration? configuration)
        : this(configuration, Environment.GetEnvironmentVariable)
    {
    }

    public void PostConfigure(string? name, KafkaTransactionsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);

        // A complete transactional.id takes no instance id.
        if (string.IsNullOrWhiteSpace(options.InstanceId) && string.IsNullOrWhiteSpace(options.TransactionalId))
        {
            options.InstanceId = Read(KafkaTransactionsOptions.InstanceIdEnvironmentVariable) ?? options.InstanceId;
        }

        if (string.IsNullOrWhiteSpace(options.BootstrapServers))
        {
            options.BootstrapServers = Read(KafkaTransactionsOptions.BootstrapServersEnvironmentVariable);
        }
    }

    private string? Read(string key)
    {
        var value = configuration?[key] ?? environment(key);
        return string.IsNullOrWhiteSpace(value) ? null : value.Trim();
    }
}
