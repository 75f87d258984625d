using Confluent.Kafka;

namespace KafkaTx.Testing;

/// <summary>Creates KafkaTx's clients over an <see cref="InMemoryKafkaCluster"/>.</summary>
internal sealed class InMemoryKafkaClientFactory(InMemoryKafkaCluster cluster) : IKafkaClientFactory
{
    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler) =>
        cluster.CreateProducer(config);

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers) =>
        cluster.CreateConsumer(config, handlers);
}
