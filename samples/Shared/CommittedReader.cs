using System.Text;
using Confluent.Kafka;

namespace KafkaTx.Samples;

/// <summary>Reads what a read_committed consumer can see: every partition from the beginning to its end.</summary>
public static class CommittedReader
{
    public static List<(string Topic, string Key, string Value)> ReadVisible(Backend backend, params IEnumerable<string> topics) =>
        [.. ReadVisibleBytes(backend, topics).Select(r => (r.Topic, Text(r.Key), Text(r.Value)))];

    /// <summary>As <see cref="ReadVisible"/>, with keys and values as written (Avro, JSON Schema: the serdes decode them).</summary>
    public static List<(string Topic, byte[]? Key, byte[]? Value)> ReadVisibleBytes(Backend backend, params IEnumerable<string> topics)
    {
        var partitions = topics.SelectMany(topic => Enumerable.Range(0, backend.PartitionCount(topic)).Select(p => new TopicPartition(topic, p))).ToList();
        using var consumer = backend.CreateConsumer(new ConsumerConfig
        {
            GroupId = "sample-reader-" + Guid.NewGuid().ToString("N"),
            IsolationLevel = IsolationLevel.ReadCommitted, // only records of committed transactions
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        });
        consumer.Assign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Beginning)));

        var visible = new List<(string, byte[]?, byte[]?)>();
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

    private static string Text(byte[]? bytes) => bytes is null ? string.Empty : Encoding.UTF8.GetString(bytes);
}
