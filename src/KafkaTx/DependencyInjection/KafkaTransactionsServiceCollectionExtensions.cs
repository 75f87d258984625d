using KafkaTx.Clients;
using KafkaTx.DependencyInjection;
using KafkaTx.Options;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers KafkaTx transactional producers in a service collection.</summary>
public static class KafkaTransactionsServiceCollectionExtensions
{
    /// <summary>
    /// Registers the default transactional producer, resolved as <see cref="KafkaTx.ITransactionalUnitOfWork"/>.
    /// Its options are validated when the host starts.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options: at least bootstrap servers and the transactional id.</param>
    /// <returns>A builder to configure the producer further.</returns>
    public static KafkaTx.IKafkaTransactionsBuilder AddKafkaTransactions(this IServiceCollection services, Action<KafkaTx.KafkaTransactionsOptions> configure) =>
        services.AddKafkaTransactions(Microsoft.Extensions.Options.Options.DefaultName, configure);

    /// <summary>
    /// Registers a named transactional producer, resolved as a keyed <see cref="KafkaTx.ITransactionalUnitOfWork"/>
    /// (<c>[FromKeyedServices("name")]</c>). Each name is a separate producer with its own transactional.id.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The producer's name.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>A builder to configure the producer further.</returns>
    public static KafkaTx.IKafkaTransactionsBuilder AddKafkaTransactions(this IServiceCollection services, string name, Action<KafkaTx.KafkaTransactionsOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddCore(services, name);
        services.Configure(name, configure);
        return builder;
    }

    /// <summary>Registers the default transactional producer with options bound from configuration (for example the "KafkaTx" section).</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The configuration section holding the options.</param>
    /// <returns>A builder to configure the producer further.</returns>
    public static KafkaTx.IKafkaTransactionsBuilder AddKafkaTransactions(this IServiceCollection services, IConfiguration configuration) =>
        services.AddKafkaTransactions(Microsoft.Extensions.Options.Options.DefaultName, configuration);

    /// <summary>Registers a named transactional producer with options bound from configuration.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The producer's name.</param>
    /// <param name="configuration">The configuration section holding the options.</param>
    /// <returns>A builder to configure the producer further.</returns>
    public static KafkaTx.IKafkaTransactionsBuilder AddKafkaTransactions(this IServiceCollection services, string name, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var builder = AddCore(services, name);
        services.Configure<KafkaTx.KafkaTransactionsOptions>(name, configuration);
        return builder;
    }

    private static KafkaTransactionsBuilder AddCore(IServiceCollection services, string name)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(name);

        services.AddOptions<KafkaTx.KafkaTransactionsOptions>(name).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KafkaTx.KafkaTransactionsOptions>, KafkaTransactionsOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<KafkaTx.KafkaTransactionsOptions>, SettingsFromConfiguration>(
            sp => new SettingsFromConfiguration(sp.GetService<IConfiguration>()))); // KAFKATX_INSTANCE_ID, KAFKATX_BOOTSTRAP_SERVERS: configuration, then the environment
        services.TryAddSingleton<KafkaTx.IKafkaClientFactory, ConfluentKafkaClientFactory>();
        services.TryAddSingleton<ClientFactories>(); // a builder's own factory (keyed by its name), else that one
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new KafkaTxInstrumentation(sp.GetService<IMeterFactory>()));
        services.TryAddSingleton<TransactionalUnitOfWorkFactory>();

        var alreadyRegistered = services.Any(d => d.IsKeyedService && d.ServiceType == typeof(KafkaTx.ITransactionalUnitOfWork) && Equals(d.ServiceKey, name));
        if (!alreadyRegistered)
        {
            if (name.Length == 0)
            {
                // The default producer is one instance, reachable with and without a key: two would fence each other.
                services.AddSingleton<KafkaTx.ITransactionalUnitOfWork>(sp => sp.GetRequiredService<TransactionalUnitOfWorkFactory>().Create(name));
                services.AddKeyedSingleton(name, (sp, _) => sp.GetRequiredService<KafkaTx.ITransactionalUnitOfWork>());
            }
            else
            {
                services.AddKeyedSingleton<KafkaTx.ITransactionalUnitOfWork>(name, (sp, _) => sp.GetRequiredService<TransactionalUnitOfWorkFactory>().Create(name));
            }
        }

        return new KafkaTransactionsBuilder(name, services);
    }
}
