using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>
/// The cluster's topics and the logs of their partitions. A topic used before it was created is created with the
/// default partition count, as Kafka's auto.create.topics.enable does. Every member runs under the cluster's lock.
/// </summary>
internal sealed class Topics(int defaultPartitions)
{
    private readonly Dictionary<string, PartitionLog[]> _topics = new(StringComparer.Ordinal);

    /// <summary>Creates a topic; creating an existing topic with the same partition count does nothing.</summary>
    public void Create(string topic, int partitions)
    {
        if (_topics.TryGetValue(topic, out var existing))
        {
            if (existing.Length != partitions)
            {
                throw new InvalidOperationException(
                    $"CreateTopic('{topic}', {partitions}): the topic already exists with {existing.Length} partition(s), and the in-memory Kafka does not change a topic's partition count. " +
                    $"Ask for {existing.Length} everywhere it is created (each builder's set-up callback included), or create it before anything uses it (a topic first used uncreated gets the cluster's DefaultPartitions).");
            }

            return;
        }

        _topics[topic] = NewLogs(topic, partitions);
    }

    /// <summary>The logs of a topic's partitions, by partition number, creating the topic if it does not exist.</summary>
    public PartitionLog[] Partitions(string topic)
    {
        if (!_topics.TryGetValue(topic, out var partitions))
        {
            _topics[topic] = partitions = NewLogs(topic, defaultPartitions);
        }

        return partitions;
    }

    /// <summary>The logs of a topic's partitions, or <see langword="null"/> when it does not exist; never creates it.</summary>
    public PartitionLog[]? Find(string topic) => _topics.GetValueOrDefault(topic);

    /// <summary>A partition's log; a partition the topic does not have fails as librdkafka fails it.</summary>
    public PartitionLog Log(TopicPartition partition)
    {
        var partitions = Partitions(partition.Topic);
        if (partition.Partition.Value < 0 || partition.Partition.Value >= partitions.Length)
        {
            throw new KafkaException(new Error(ErrorCode.Local_UnknownPartition, $"Local: Unknown partition {partition}"));
        }

        return partitions[partition.Partition.Value];
    }

    private static PartitionLog[] NewLogs(string topic, int partitions) =>
        [.. Enumerable.Range(0, partitions).Select(p => new PartitionLog(new TopicPartition(topic, p)))];
}
