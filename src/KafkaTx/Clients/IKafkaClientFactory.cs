using Confluent.Kafka;

namespace KafkaTx;

/// <summary>
/// Creates the Kafka clients KafkaTx uses. Replace it (with <c>UseClientFactory</c> on the builder) to run against a
/// fake or in-memory Kafka in tests, or to decorate the clients.
/// </summary>
public interface IKafkaClientFactory
{
    /// <summary>Creates a transactional producer of raw bytes; KafkaTx serializes keys and values itself.</summary>
    /// <param name="config">The complete, validated configuration, transactional.id included.</param>
    /// <param name="errorHandler">Receives errors the client reports outside any call (fatal errors among them).</param>
    /// <param name="logHandler">Receives the client's log lines.</param>
    /// <returns>A producer that has not yet called InitTransactions.</returns>
    /// <remarks>KafkaTx reuses the <see cref="Message{TKey, TValue}"/> it passes to Produce once the call returns, as
    /// Confluent.Kafka permits: an implementation must copy whatever it keeps of it.</remarks>
    IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler);

    /// <summary>Creates a consumer of raw bytes for a transactional processor; KafkaTx deserializes itself.</summary>
    /// <param name="config">The complete, validated configuration (read_committed, no auto-commit).</param>
    /// <param name="handlers">Rebalance, error and log callbacks the consumer must invoke, on the thread that calls Consume.</param>
    /// <returns>A consumer that has not yet subscribed.</returns>
    IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers);
}
