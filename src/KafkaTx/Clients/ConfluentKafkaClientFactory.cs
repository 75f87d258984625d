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
}
