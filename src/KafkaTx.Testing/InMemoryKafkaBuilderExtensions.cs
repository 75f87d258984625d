using KafkaTx.Testing;
using KafkaTx.Testing.Clients;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace KafkaTx;

/// <summary>
/// Runs a builder's KafkaTx producer and processor on an in-memory Kafka. Each call applies to its own builder only:
/// other producers of the application keep their own backend.
/// </summary>
public static class InMemoryKafkaBuilderExtensions
{
    /// <summary>
    /// Makes this builder's producer and processor use the application's in-memory Kafka, registered as a singleton
    /// <see cref="InMemoryKafkaCluster"/> that a test resolves to write input and inspect output (every builder that
    /// calls it shares that one cluster). BootstrapServers may be left unset or empty; when it is set, it is not used,
    /// and the producer's start-up log says so. Other builders are not affected.
    /// </summary>
    /// <param name="builder">The builder returned by <c>AddKafkaTransactions</c>.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder UseInMemoryKafka(this IKafkaTransactionsBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<InMemoryKafkaCluster>(_ => new InMemoryKafkaCluster());
        return RunInMemory(builder, onlyWithoutBootstrapServers: false, whenInMemory: null);
    }

    /// <summary>
    /// As <see cref="UseInMemoryKafka(IKafkaTransactionsBuilder)"/>, and runs <paramref name="whenInMemory"/> on the
    /// cluster once, before this builder's first client (its producer, or its processor's consumer) is created: the
    /// place to create the topics a processor subscribes to, or to write input a test starts from.
    /// </summary>
    /// <param name="builder">The builder returned by <c>AddKafkaTransactions</c>.</param>
    /// <param name="whenInMemory">The set-up, given the application's <see cref="InMemoryKafkaCluster"/>. Builders that
    /// share the cluster may each create the same topics: <see cref="InMemoryKafkaCluster.CreateTopic"/> of an existing
    /// topic with the same partition count does nothing. If it throws, no client is created and it runs again before the next.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder UseInMemoryKafka(this IKafkaTransactionsBuilder builder, Action<InMemoryKafkaCluster> whenInMemory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(whenInMemory);
        builder.Services.TryAddSingleton<InMemoryKafkaCluster>(_ => new InMemoryKafkaCluster());
        return RunInMemory(builder, onlyWithoutBootstrapServers: false, whenInMemory);
    }

    /// <summary>
    /// Makes this builder's producer and processor use <paramref name="cluster"/> instead of real Kafka, and registers
    /// it as the application's <see cref="InMemoryKafkaCluster"/>. BootstrapServers may be left unset or empty. Other
    /// builders are not affected (those that call <see cref="UseInMemoryKafka(IKafkaTransactionsBuilder)"/> or
    /// <see cref="UseInMemoryKafkaWhenNoBootstrapServers(IKafkaTransactionsBuilder)"/> meet on this cluster). Seed
    /// <paramref name="cluster"/> directly: it is the test's own.
    /// </summary>
    /// <param name="builder">The builder returned by <c>AddKafkaTransactions</c>.</param>
    /// <param name="cluster">The cluster to use; keep a reference to inspect it in the test.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="InvalidOperationException">An earlier call (on this builder or another) registered a different cluster.</exception>
    public static IKafkaTransactionsBuilder UseInMemoryKafka(this IKafkaTransactionsBuilder builder, InMemoryKafkaCluster cluster)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(cluster);
        if (builder.Services.LastOrDefault(d => d.ServiceType == typeof(InMemoryKafkaCluster) && !d.IsKeyedService)?.ImplementationInstance is InMemoryKafkaCluster earlier
            && !ReferenceEquals(earlier, cluster))
        {
            // The application has one in-memory Kafka: replacing it would move every builder already given the first
            // cluster to this one, silently.
            var name = builder.Name.Length == 0 ? "(default)" : builder.Name;
            throw new InvalidOperationException(
                $"UseInMemoryKafka(cluster) on producer '{name}' was given a different InMemoryKafkaCluster than an earlier UseInMemoryKafka(cluster) call (on this builder or another). " +
                "The application has one in-memory Kafka, shared by every builder that runs in memory, so a second cluster cannot be used beside the first. " +
                "Pass the same cluster to every call, or pass it once and call UseInMemoryKafka() on the other builders, which then use it.");
        }

        builder.Services.Replace(ServiceDescriptor.Singleton(cluster));
        return RunInMemory(builder, onlyWithoutBootstrapServers: false, whenInMemory: null);
    }

    /// <summary>
    /// The embedded default: this builder's producer and processor run on the application's in-memory Kafka (one
    /// singleton <see cref="InMemoryKafkaCluster"/>, shared with every other builder that runs in memory, so that a web
    /// producer and a processor meet on the same topics) when its resolved
    /// <see cref="KafkaTransactionsOptions.BootstrapServers"/> is null, empty or white space, after
    /// <c>KAFKATX_BOOTSTRAP_SERVERS</c> was looked up in the configuration and the environment; otherwise on the
    /// Kafka those servers name, through Confluent.Kafka. The producer logs which one at start (Information).
    /// </summary>
    /// <param name="builder">The builder returned by <c>AddKafkaTransactions</c>.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder UseInMemoryKafkaWhenNoBootstrapServers(this IKafkaTransactionsBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<InMemoryKafkaCluster>(_ => new InMemoryKafkaCluster());
        return RunInMemory(builder, onlyWithoutBootstrapServers: true, whenInMemory: null);
    }

    /// <summary>
    /// As <see cref="UseInMemoryKafkaWhenNoBootstrapServers(IKafkaTransactionsBuilder)"/>, and, only when this builder
    /// does run in memory, runs <paramref name="whenInMemory"/> on the cluster once, before the builder's first client
    /// (its producer, or its processor's consumer) is created: the place to create the topics that a broker would have
    /// been given beforehand. With bootstrap servers configured it never runs.
    /// </summary>
    /// <param name="builder">The builder returned by <c>AddKafkaTransactions</c>.</param>
    /// <param name="whenInMemory">The set-up, given the application's <see cref="InMemoryKafkaCluster"/>. Builders that
    /// share the cluster may each create the same topics: <see cref="InMemoryKafkaCluster.CreateTopic"/> of an existing
    /// topic with the same partition count does nothing. If it throws, no client is created and it runs again before the next.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder UseInMemoryKafkaWhenNoBootstrapServers(this IKafkaTransactionsBuilder builder, Action<InMemoryKafkaCluster> whenInMemory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(whenInMemory);
        builder.Services.TryAddSingleton<InMemoryKafkaCluster>(_ => new InMemoryKafkaCluster());
        return RunInMemory(builder, onlyWithoutBootstrapServers: true, whenInMemory);
    }

    private static IKafkaTransactionsBuilder RunInMemory(IKafkaTransactionsBuilder builder, bool onlyWithoutBootstrapServers, Action<InMemoryKafkaCluster>? whenInMemory)
    {
        var name = builder.Name;
        var services = builder.Services;
        services.TryAddSingleton<InMemoryClientFactories>();

        // Registered after the library's own post-configurations (KAFKATX_BOOTSTRAP_SERVERS among them), so that it sees
        // the servers they found; the in-memory address keeps the options' validation meaningful for the rest.
        services.PostConfigure<KafkaTransactionsOptions>(name, o =>
        {
            if (string.IsNullOrWhiteSpace(o.BootstrapServers))
            {
                o.BootstrapServers = InMemoryKafkaCluster.Address;
            }
        });

        // The last choice on a builder wins: a keyed factory for this builder's name, which KafkaTx prefers to the
        // application's IKafkaClientFactory.
        services.RemoveAllKeyed<IKafkaClientFactory>(name);
        services.AddKeyedSingleton<IKafkaClientFactory>(name, (sp, _) =>
        {
            var servers = sp.GetRequiredService<IOptionsMonitor<KafkaTransactionsOptions>>().Get(name).BootstrapServers;
            var configured = servers == InMemoryKafkaCluster.Address ? null : servers;
            if (onlyWithoutBootstrapServers && configured is not null)
            {
                return sp.GetRequiredService<IKafkaClientFactory>(); // real Kafka: servers were configured
            }

            var cluster = sp.GetRequiredService<InMemoryKafkaCluster>();
            return new InMemoryBackend(sp.GetRequiredService<InMemoryClientFactories>().For(cluster), configured, cluster, whenInMemory, name, onlyWithoutBootstrapServers);
        });
        return builder;
    }
}
