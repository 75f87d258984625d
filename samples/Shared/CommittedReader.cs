using System.Text;
using Confluent.Kafka;

namespace KafkaTx.Samples;

/// <summary>Reads what a read_committed consumer can see: every partition from the beginning to its end.</summary>
public static class CommittedReader
{
    public static List<(string Topic, string Key, string Value)> ReadVisible(string bootstrapServers, params IEnumerable<string> topics)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
        var partitions = topics
            .SelectMany(topic => admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics)
            .Where(t => t.Error.Code == ErrorCode.NoError)
            .SelectMany(t => t.Partitions.Select(p => new TopicPartition(t.Topic, p.PartitionId)))
            .ToList();

        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "sample-reader-" + Guid.NewGuid().ToString("N"),
            IsolationLevel = IsolationLevel.ReadCommitted, // only records of committed transactions
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        }).Build();
        consumer.Assign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Beginning)));

        var visible = new List<(string, string, string)>();
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
                visible.Add((result.Topic, result.Message.Key, result.Message.Value));
            }
        }

        consumer.Close();
        return visible;
    }
}
