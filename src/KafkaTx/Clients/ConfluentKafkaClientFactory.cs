using Confluent.Kafka;

namespace KafkaTx.Clients;

/// <summary>The default factory: real Confluent.Kafka clients.</summary>
internal sealed class ConfluentKafkaClientFactory : IKafkaClientFactory
{
    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(errorHandler);
        ArgumentNullException.ThrowIfNull(logHandler);
        return new ProducerBuilder<byte[]?, byte[]?>(config)
            .SetErrorHandler((_, error) => errorHandler(error))
            .SetLogHandler((_, message) => logHandler(message))
            .Build();
    }

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(handlers);

        // Confluent.Kafka applies these as incremental changes under the cooperative protocol, and as whole
        // assignments under the eager one; the processor's logic is the same for both.
        return new ConsumerBuilder<byte[]?, byte[]?>(config)
            .SetPartitionsAssignedHandler((_, partitions) => handlers.PartitionsAssigned(partitions))
            .SetPartitionsRevokedHandler((_, partitions) => handlers.PartitionsRevoked(partitions))
            .SetPartitionsLostHandler((_, partitions) => handlers.PartitionsLost(partitions))
            .SetErrorHandler((_, error) => handlers.Error(error))
            .SetLogHandler((_, message) => handlers.Log(message))
            .Build();
    }
}
