using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>The offsets a consumer group has committed, by partition: directly, or with a transaction that committed. Under the cluster's lock.</summary>
internal sealed class CommittedOffsets
{
    private readonly Dictionary<TopicPartition, long> _offsets = [];

    public void Commit(TopicPartition partition, long offset) => _offsets[partition] = offset;

    public long? Of(TopicPartition partition) => _offsets.TryGetValue(partition, out var offset) ? offset : null;
}
