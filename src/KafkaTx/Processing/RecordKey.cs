using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// Where a consumed record lies: its topic, partition and offset. Kept as the topic's name and the partition's number,
/// not as a <see cref="Confluent.Kafka.TopicPartition"/>: reading a consume result's TopicPartition allocates one, and
/// a key is taken for every record.
/// </summary>
internal readonly record struct RecordKey(string Topic, int Partition, long Offset)
{
    public RecordKey(TopicPartition topicPartition, long offset)
        : this(topicPartition.Topic, topicPartition.Partition.Value, offset)
    {
    }

    /// <summary>The record's partition (a new object each time: not for the per-record path).</summary>
    public TopicPartition TopicPartition => new(Topic, Partition);

    /// <summary>The topic and partition, as a dictionary key that allocates nothing.</summary>
    public (string Topic, int Partition) Where => (Topic, Partition);

    public static RecordKey Of(ConsumeResult<byte[]?, byte[]?> result) => new(result.Topic, result.Partition.Value, result.Offset.Value);

    /// <summary>Whether the record lies in the given partition.</summary>
    public bool IsIn(string topic, int partition) =>
        Partition == partition && (ReferenceEquals(Topic, topic) || string.Equals(Topic, topic, StringComparison.Ordinal));

    public override string ToString() => $"{Topic} [{Partition}] @{Offset}";
}
