using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// Where each partition's committed progress stands, as far as this processor knows it without asking the broker:
/// the positions it committed itself since the partition was assigned to it. A rewind after an abort seeks there,
/// and asks the group only for the partitions it has not committed since they were assigned. That saves a round
/// trip per abort, and does not depend on how soon a broker shows transactional offsets (brokers before 2.5, without
/// KIP-447, show them a little after the commit).
/// </summary>
/// <remarks>Used on the processor's loop thread only (rebalance callbacks run there too).</remarks>
internal sealed class CommittedPositions
{
    private readonly Dictionary<TopicPartition, Offset> _positions = [];
    private readonly Dictionary<TopicPartition, long> _firstConsumed = [];

    /// <summary>A transaction that sent these positions committed.</summary>
    public void Committed(IEnumerable<TopicPartitionOffset> positions)
    {
        foreach (var position in positions)
        {
            _positions[position.TopicPartition] = position.Offset;
        }
    }

    /// <summary>A record was consumed from this partition; the first since it was assigned is kept.</summary>
    public void Consumed(TopicPartition partition, long offset) => _firstConsumed.TryAdd(partition, offset);

    /// <summary>The first offset consumed from the partition since it was assigned, if any.</summary>
    public long? FirstConsumed(TopicPartition partition) => _firstConsumed.TryGetValue(partition, out var offset) ? offset : null;

    /// <summary>What is known of these partitions no longer holds: they were (re)assigned, revoked or lost.</summary>
    public void Forget(IEnumerable<TopicPartition> partitions)
    {
        foreach (var partition in partitions)
        {
            _positions.Remove(partition);
            _firstConsumed.Remove(partition);
        }
    }

    /// <summary>A commit that covered these partitions has an unknown outcome: their committed positions must be asked for.</summary>
    public void ForgetCommitted(IEnumerable<TopicPartition> partitions)
    {
        foreach (var partition in partitions)
        {
            _positions.Remove(partition);
        }
    }

    /// <summary>Splits an assignment into the positions known here and the partitions whose position must be fetched.</summary>
    public (List<TopicPartitionOffset> Known, List<TopicPartition> Unknown) Split(IEnumerable<TopicPartition> assignment)
    {
        var known = new List<TopicPartitionOffset>();
        var unknown = new List<TopicPartition>();
        foreach (var partition in assignment)
        {
            if (_positions.TryGetValue(partition, out var offset))
            {
                known.Add(new TopicPartitionOffset(partition, offset));
            }
            else
            {
                unknown.Add(partition);
            }
        }

        return (known, unknown);
    }
}
