using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>Where a consumed record lies: its partition and offset.</summary>
internal readonly record struct RecordKey(TopicPartition TopicPartition, long Offset)
{
    public static RecordKey Of(ConsumeResult<byte[]?, byte[]?> result) => new(result.TopicPartition, result.Offset.Value);

    public override string ToString() => $"{TopicPartition.Topic} [{TopicPartition.Partition.Value}] @{Offset}";
}
