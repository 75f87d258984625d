using System.Text;
using Confluent.Kafka;

namespace KafkaTx.IntegrationTests.Support;

internal sealed record ReadRecord(string Topic, int Partition, long Offset, string? Key, string? Value, Headers? Headers = null);

/// <summary>
/// Reads every record a consumer with the given isolation level can see, from the beginning of each partition to
/// its end (the last stable offset for read_committed), with a deadline instead of sleeps.
/// </summary>
internal static class TopicReader
{
    public static List<ReadRecord> ReadAll(string bootstrapServers, IsolationLevel isolation, TimeSpan deadline, params string[] topics)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
        var partitions = topics
            .SelectMany(topic => admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics
                .Where(t => t.Error.Code == ErrorCode.NoError)
                .SelectMany(t => t.Partitions.Select(p => new TopicPartition(t.Topic, p.PartitionId))))
            .ToList();
        return ReadAll(config => new ConsumerBuilder<byte[]?, byte[]?>(config).Build(), bootstrapServers, partitions, isolation, deadline);
    }

    /// <summary>The same, through any backend's consumers.</summary>
    public static List<ReadRecord> ReadAll(Conformance.IConformanceBackend backend, IsolationLevel isolation, TimeSpan deadline, params string[] topics)
    {
        var partitions = topics.SelectMany(t => Enumerable.Range(0, backend.PartitionCount(t)).Select(p => new TopicPartition(t, p))).ToList();
        return ReadAll(backend.CreateConsumer, backend.BootstrapServers, partitions, isolation, deadline);
    }

    private static List<ReadRecord> ReadAll(Func<ConsumerConfig, IConsumer<byte[]?, byte[]?>> create, string bootstrapServers, List<TopicPartition> partitions, IsolationLevel isolation, TimeSpan deadline)
    {
        using var consumer = create(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "kafkatx-reader-" + Guid.NewGuid().ToString("N"),
            IsolationLevel = isolation,
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            AutoOffsetReset = AutoOffsetReset.Earliest,
        });
        consumer.Assign(partitions.Select(tp => new TopicPartitionOffset(tp, Offset.Beginning)));

        var records = new List<ReadRecord>();
        var atEnd = new HashSet<TopicPartition>();
        var stopAt = DateTime.UtcNow + deadline;
        while (atEnd.Count < partitions.Count && DateTime.UtcNow < stopAt)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                atEnd.Add(result.TopicPartition);
                continue;
            }

            atEnd.Remove(result.TopicPartition);
            records.Add(new ReadRecord(result.Topic, result.Partition.Value, result.Offset.Value, Text(result.Message.Key), Text(result.Message.Value), result.Message.Headers));
        }

        if (atEnd.Count < partitions.Count)
        {
            throw new TimeoutException($"Read {records.Count} records but reached the end of only {atEnd.Count} of {partitions.Count} partitions within {deadline}.");
        }

        consumer.Close();
        return records;
    }

    public static long EndOffset(string bootstrapServers, TopicPartition partition)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = "kafkatx-watermarks" }).Build();
        return consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10)).High.Value;
    }

    private static string? Text(byte[]? bytes) => bytes is null ? null : Encoding.UTF8.GetString(bytes);
}
