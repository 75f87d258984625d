using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Verification;

namespace KafkaTx.Reliability.Crash;

/// <summary>
/// A real broker (or librdkafka's mock cluster, for the harness's own tests, which creates topics its own way:
/// <paramref name="createTopic"/>); each copier incarnation is a child process.
/// </summary>
internal sealed class BrokerCopierBackend(string bootstrapServers, Action<string, int>? createTopic = null) : ICopierBackend
{
    public string BootstrapServers => bootstrapServers;

    private readonly Dictionary<int, long> _read = [];
    private IConsumer<Ignore, string>? _reader;
    private IConsumer<Ignore, Ignore>? _progress;

    public string Description => $"Kafka at {bootstrapServers}; copiers as child processes";

    public async Task CreateTopicsAsync(int partitions, params string[] topics)
    {
        if (createTopic is not null)
        {
            foreach (var topic in topics)
            {
                createTopic(topic, partitions);
            }

            return;
        }

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
        try
        {
            await admin.CreateTopicsAsync(topics.Select(t => new TopicSpecification { Name = t, NumPartitions = partitions, ReplicationFactor = -1 }));
        }
        catch (CreateTopicsException e) when (e.Results.All(r => r.Error.Code is ErrorCode.NoError or ErrorCode.TopicAlreadyExists))
        {
        }
    }

    public void Seed(string topic, int partitions, long first, int count, int keys = 1)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrapServers, EnableIdempotence = true, LingerMs = 20 }).Build();
        for (var p = 0; p < partitions; p++)
        {
            var partition = new TopicPartition(topic, p);
            for (var sequence = first; sequence < first + count; sequence++)
            {
                while (true)
                {
                    try
                    {
                        producer.Produce(partition, new Message<string, string> { Key = OutputVerifier.Key(p, sequence, keys), Value = OutputVerifier.Value(p, sequence) });
                        break;
                    }
                    catch (ProduceException<string, string> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                    {
                        producer.Poll(TimeSpan.FromMilliseconds(100));
                    }
                }
            }
        }

        if (producer.Flush(TimeSpan.FromMinutes(2)) > 0)
        {
            throw new TimeoutException($"The input records to '{topic}' were not all delivered within 2 minutes.");
        }
    }

    public Task<ICopier> StartCopierAsync(CopierSettings settings) => Task.FromResult<ICopier>(ProcessCopier.Start(settings));

    public void ReadNewOutput(string topic, OutputVerifier verifier)
    {
        if (_reader is null)
        {
            _reader = new ConsumerBuilder<Ignore, string>(new ConsumerConfig
            {
                BootstrapServers = bootstrapServers,
                GroupId = "kafkatx-verifier-" + Guid.NewGuid().ToString("N"),
                IsolationLevel = IsolationLevel.ReadCommitted,
                EnableAutoCommit = false,
                EnablePartitionEof = true,
                AutoOffsetReset = AutoOffsetReset.Earliest,
            }).Build();
            var partitions = _reader.GetMetadata(topic).Partitions.Count;
            _reader.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        }

        // Read until every partition reports its end (for read_committed: the last stable offset).
        var atEnd = new HashSet<int>();
        var count = _reader.Assignment.Count;
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (atEnd.Count < count && DateTime.UtcNow < deadline)
        {
            var result = _reader.Consume(TimeSpan.FromSeconds(1));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                atEnd.Add(result.Partition.Value);
                _read[result.Partition.Value] = result.Offset.Value;
                continue;
            }

            atEnd.Remove(result.Partition.Value);
            verifier.Observe(result.Message.Value);
            _read[result.Partition.Value] = result.Offset.Value + 1;
        }

        if (atEnd.Count < count)
        {
            throw new TimeoutException($"The output '{topic}' could not be read to its end within 2 minutes.");
        }
    }

    public IReadOnlyDictionary<int, (long Committed, long End)> Progress(string input, string group)
    {
        // One consumer of the copiers' group, never subscribed: it only reads the group's committed offsets.
        var consumer = _progress ??= new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = group }).Build();
        var partitions = consumer.GetMetadata(input).Partitions.Count;
        var all = Enumerable.Range(0, partitions).Select(p => new TopicPartition(input, p)).ToList();
        var committed = consumer.Committed(all, TimeSpan.FromSeconds(30));
        return committed.ToDictionary(
            c => c.Partition.Value,
            c => (c.Offset.Value < 0 ? 0 : c.Offset.Value, consumer.QueryWatermarkOffsets(c.TopicPartition, TimeSpan.FromSeconds(30)).High.Value));
    }

    public void DeleteBefore(string topic, IReadOnlyDictionary<int, long> offsets)
    {
        // A broker keeps records per its retention; the harness deletes nothing there.
    }

    public IReadOnlyDictionary<int, long> OutputPositions(string topic) => new Dictionary<int, long>(_read);

    public ValueTask DisposeAsync()
    {
        _reader?.Close();
        _reader?.Dispose();
        _progress?.Dispose();
        return ValueTask.CompletedTask;
    }
}

internal static class ConsumerMetadata
{
    public static TopicMetadata GetMetadata<TKey, TValue>(this IConsumer<TKey, TValue> consumer, string topic)
    {
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(30)).Topics.Single();
        if (metadata.Error.Code != ErrorCode.NoError || metadata.Partitions.Count == 0)
        {
            throw new InvalidOperationException($"Topic '{topic}' has no partitions: {metadata.Error.Reason}.");
        }

        return metadata;
    }
}
