using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace KafkaTx.Options;

/// <summary>
/// Fills in <see cref="KafkaTransactionsOptions.InstanceId"/> when neither code nor the producer's configuration
/// section set it: from <c>KAFKATX_INSTANCE_ID</c> in the application's configuration (where a host's defaults put
/// environment variables, command-line arguments and appsettings.json, in their usual order), else from the
/// environment variable itself (an application without a host registers no configuration).
/// </summary>
/// <remarks>
/// A post-configuration, so that it sees the options after every <c>Configure</c> and binding, and fills only what they
/// left unset: an instance id set explicitly always wins. It writes the id it found into the options, so that
/// validation, logs and <see cref="KafkaTransactionsOptions.ResolveTransactionalId"/> all see one value.
/// </remarks>
internal sealed class InstanceIdFromConfiguration(IConfiguration? configuration, Func<string, string?> environment)
    : IPostConfigureOptions<KafkaTransactionsOptions>
{
    public InstanceIdFromConfiguration(IConfiguration? configuration)
        : this(configuration, Environment.GetEnvironmentVariable)
    {
    }

    public void PostConfigure(string? name, KafkaTransactionsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!string.IsNullOrWhiteSpace(options.InstanceId) || !string.IsNullOrWhiteSpace(options.TransactionalId))
        {
            return; // set explicitly, or not needed: a complete transactional.id takes no instance id
        }

        var configured = configuration?[KafkaTransactionsOptions.InstanceIdEnvironmentVariable];
        var instanceId = string.IsNullOrWhiteSpace(configured) ? environment(KafkaTransactionsOptions.InstanceIdEnvironmentVariable) : configured;
        if (!string.IsNullOrWhiteSpace(instanceId))
        {
            options.InstanceId = instanceId;
        }
    }
}
