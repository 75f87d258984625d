using Confluent.Kafka;

namespace ConsumeTransformProduce;

/// <summary>Reads the keys a read_committed consumer can see, from the beginning of each partition to its end.</summary>
public static class CommittedReader
{
    public static List<(string Topic, string Key)> Read(string bootstrapServers, string[] topics)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
        var partitions = topics
            .SelectMany(topic => admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics)
            .Where(t => t.Error.Code == ErrorCode.NoError)
            .SelectMany(t => t.Partitions.Select(p => new TopicPartition(t.Topic, p.PartitionId)))
            .ToList();
        using var consumer = new ConsumerBuilder<string, Ignore>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "order-reader-" + Guid.NewGuid().ToString("N"),
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        }).Build();
        consumer.Assign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Beginning)));

        var keys = new List<(string, string)>();
        var finished = new HashSet<TopicPartition>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (finished.Count < partitions.Count && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                finished.Add(result.TopicPartition);
            }
            else
            {
                keys.Add((result.Topic, result.Message.Key));
            }
        }

        consumer.Close();
        return keys;
    }
}
