using Confluent.Kafka;
using KafkaTx.Testing.Clients;

namespace KafkaTx.Testing;

/// <summary>
/// Creates KafkaTx's clients over an <see cref="InMemoryKafkaCluster"/>. One factory serves one application (one
/// "process"): after <see cref="InMemoryKafkaCluster.CrashClients"/>, whatever it creates is dead too.
/// </summary>
internal sealed class InMemoryKafkaClientFactory(InMemoryKafkaCluster cluster) : IKafkaClientFactory
{
    private readonly int _crashCountAtStart = cluster.Clients.CrashCount;

    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler) =>
        cluster.Clients.OpenFor(() => new InMemoryProducer(cluster, config), _crashCountAtStart);

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers) =>
        cluster.Clients.OpenFor(() => new InMemoryConsumer(cluster, config, handlers), _crashCountAtStart);
}
