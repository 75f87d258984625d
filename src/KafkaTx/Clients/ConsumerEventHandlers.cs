using Confluent.Kafka;

namespace KafkaTx;

/// <summary>
/// The callbacks a processor's consumer must invoke. They run on the thread that calls Consume, before Consume
/// returns, as Confluent.Kafka's rebalance handlers do; a revoke handler returns only when the processor has
/// committed or aborted its open transaction.
/// </summary>
public sealed class ConsumerEventHandlers
{
    /// <summary>Partitions were assigned (incrementally, with the cooperative protocol).</summary>
    public required Action<IReadOnlyList<TopicPartition>> PartitionsAssigned { get; init; }

    /// <summary>Partitions are being revoked in an orderly rebalance; the member still owns them until this returns.</summary>
    public required Action<IReadOnlyList<TopicPartitionOffset>> PartitionsRevoked { get; init; }

    /// <summary>Partitions were lost (the member was thrown out of the group); others may already own them.</summary>
    public required Action<IReadOnlyList<TopicPartitionOffset>> PartitionsLost { get; init; }

    /// <summary>Errors the client reports outside any call.</summary>
    public required Action<Error> Error { get; init; }

    /// <summary>The client's log lines.</summary>
    public required Action<LogMessage> Log { get; init; }
}
