using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace KafkaTx;

/// <summary>Runs KafkaTx producers and processors on an in-memory Kafka.</summary>
public static class InMemoryKafkaBuilderExtensions
{
    /// <summary>
    /// Makes every KafkaTx producer and processor of the application use one in-memory Kafka, registered as a
    /// singleton <see cref="InMemoryKafkaCluster"/> that the test resolves to write input and inspect output.
    /// BootstrapServers may be left unset.
    /// </summary>
    /// <param name="builder">The builder returned by <c>AddKafkaTransactions</c>.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder UseInMemoryKafka(this IKafkaTransactionsBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<InMemoryKafkaCluster>(_ => new InMemoryKafkaCluster());
        builder.Services.Replace(ServiceDescriptor.Singleton<IKafkaClientFactory>(sp => new InMemoryKafkaClientFactory(sp.GetRequiredService<InMemoryKafkaCluster>())));
        DefaultBootstrapServers(builder);
        return builder;
    }

    /// <summary>
    /// Makes every KafkaTx producer and processor of the application use <paramref name="cluster"/> instead of real
    /// Kafka. BootstrapServers may be left unset.
    /// </summary>
    /// <param name="builder">The builder returned by <c>AddKafkaTransactions</c>.</param>
    /// <param name="cluster">The cluster to use; keep a reference to inspect it in the test.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder UseInMemoryKafka(this IKafkaTransactionsBuilder builder, InMemoryKafkaCluster cluster)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(cluster);
        builder.Services.Replace(ServiceDescriptor.Singleton(cluster));
        builder.UseClientFactory(new InMemoryKafkaClientFactory(cluster));
        DefaultBootstrapServers(builder);
        return builder;
    }

    // The in-memory cluster needs no address; filling one in keeps the options' validation meaningful for the rest.
    private static void DefaultBootstrapServers(IKafkaTransactionsBuilder builder) =>
        builder.Services.PostConfigure<KafkaTransactionsOptions>(builder.Name, o => o.BootstrapServers ??= "in-memory");
}
