using Confluent.Kafka;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// The client factory of one builder that runs in memory: the application's in-memory factory, described for the
/// producer's start-up log, which names servers configured but not used.
/// </summary>
internal sealed class InMemoryBackend(InMemoryKafkaClientFactory factory, string? ignoredBootstrapServers) : IKafkaClientFactory
{
    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler) =>
        factory.CreateProducer(config, errorHandler, logHandler);

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers) =>
        factory.CreateConsumer(config, handlers);

    public override string ToString() => ignoredBootstrapServers is null
        ? "in-memory Kafka (KafkaTx.Testing)"
        : $"in-memory Kafka (KafkaTx.Testing): UseInMemoryKafka() was called on this builder, so its BootstrapServers '{ignoredBootstrapServers}' are not used";
}
