using Confluent.Kafka;

namespace KafkaTx.IntegrationTests.Conformance;

/// <summary>What a backend of the conformance suite must emulate; a missing capability skips the scenarios that need it.</summary>
public enum Capability
{
    ReadCommitted,
    Fencing,
    TransactionalOffsets,
    CoordinatorTimeout,
    Markers,
}

/// <summary>A Kafka the conformance scenarios run against: in-memory, librdkafka's mock cluster, or a real broker.</summary>
public interface IConformanceBackend
{
    string BootstrapServers { get; }

    /// <summary>Why the backend cannot run scenarios needing <paramref name="capability"/>, or null when it can.</summary>
    string? Lacks(Capability capability);

    /// <summary>Skips the calling test, with the reason, when the backend is absent.</summary>
    void RequireAvailable();

    /// <summary>
    /// Skips the calling test, with the reason, when the backend lacks the group protocol: the consumer protocol of
    /// KIP-848 needs ConsumerGroupHeartbeat (API 68), which a real broker has from Kafka 4.0 (probed), librdkafka's
    /// mock cluster since librdkafka 2.12, and the in-memory cluster models.
    /// </summary>
    Task RequireProtocolAsync(GroupProtocol protocol);

    Task<string[]> CreateTopicsAsync(int partitions, params string[] prefixes);

    IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config);

    IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config);

    int PartitionCount(string topic);

    /// <summary>Points KafkaTx's registrations at this backend.</summary>
    IKafkaTransactionsBuilder Use(IKafkaTransactionsBuilder builder);
}
