using KafkaTx.Testing;

namespace KafkaTx;

/// <summary>Runs KafkaTx producers and processors on an in-memory Kafka.</summary>
public static class InMemoryKafkaBuilderExtensions
{
    /// <summary>
    /// Makes every KafkaTx producer and processor of the application use <paramref name="cluster"/> instead of real
    /// Kafka. BootstrapServers still has to be set (any value) for the options to validate.
    /// </summary>
    /// <param name="builder">The builder returned by <c>AddKafkaTransactions</c>.</param>
    /// <param name="cluster">The cluster to use; keep a reference to inspect it in the test.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder UseInMemoryKafka(this IKafkaTransactionsBuilder builder, InMemoryKafkaCluster cluster)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(cluster);
        return builder.UseClientFactory(new InMemoryKafkaClientFactory(cluster));
    }
}
