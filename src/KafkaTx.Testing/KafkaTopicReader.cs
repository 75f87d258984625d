using Confluent.Kafka;

namespace KafkaTx.Testing;

/// <summary>
/// Reads a topic of a real Kafka broker as a consumer sees it, for tests: every partition from its beginning to its
/// end, by default with read_committed (what a downstream consumer sees of the application's transactions). The
/// records come back as <see cref="InMemoryRecord"/>s, partition by partition, as
/// <see cref="InMemoryKafkaCluster.ReadTopic"/> returns them, so one assertion serves both backends.
/// </summary>
/// <remarks>
/// The reader assigns the partitions itself: it joins no consumer group and commits nothing. It never creates the
/// topic (<c>allow.auto.create.topics=false</c>, whatever the broker's <c>auto.create.topics.enable</c>): a topic that
/// does not exist reads as empty, as it does in memory. The end of a partition is where a consumer of the isolation
/// level stops: for read_committed, the last stable offset, so a transaction still open is not waited for.
/// </remarks>
public static class KafkaTopicReader
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>Reads every record of a topic that a consumer with the isolation level sees now.</summary>
    /// <param name="bootstrapServers">The broker's bootstrap.servers.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="isolation">The isolation level; read_committed by default, as librdkafka's.</param>
    /// <param name="timeout">How long reading may take; 30 seconds by default.</param>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <returns>The records, partition by partition in offset order; none when the topic does not exist.</returns>
    /// <exception cref="TimeoutException">Not every partition's end was reached within <paramref name="timeout"/> (the broker is unreachable, say).</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public static IReadOnlyList<InMemoryRecord> ReadTopic(
        string bootstrapServers,
        string topic,
        IsolationLevel isolation = IsolationLevel.ReadCommitted,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(bootstrapServers);
        return ReadTopic(new ConsumerConfig { BootstrapServers = bootstrapServers, IsolationLevel = isolation }, topic, timeout, cancellationToken);
    }

    /// <summary>
    /// Reads every record of a topic that a consumer with <paramref name="config"/> sees now: pass the security settings
    /// of a secured broker here. The isolation level is the config's (read_committed when unset). The config is copied,
    /// not changed.
    /// </summary>
    /// <param name="config">The consumer settings; bootstrap.servers is required. group.id, auto-commit, partition EOF and topic auto-creation are set by the reader.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="timeout">How long reading may take; 30 seconds by default.</param>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <returns>The records, partition by partition in offset order; none when the topic does not exist.</returns>
    /// <exception cref="TimeoutException">Not every partition's end was reached within <paramref name="timeout"/>.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public static IReadOnlyList<InMemoryRecord> ReadTopic(ConsumerConfig config, string topic, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentException.ThrowIfNullOrEmpty(topic);
        var limit = timeout ?? DefaultTimeout;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(limit, TimeSpan.Zero, nameof(timeout));
        var deadline = DateTime.UtcNow + limit;

        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(ReaderConfig(config)).SetLogHandler((_, _) => { }).Build();
        var partitions = Partitions(consumer, topic, deadline, limit, cancellationToken);
        if (partitions.Count == 0)
        {
            return [];
        }

        consumer.Assign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Beginning)));
        var records = new List<InMemoryRecord>();
        var atEnd = new HashSet<TopicPartition>();
        while (atEnd.Count < partitions.Count)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException(
                    $"Reading topic '{topic}' reached the end of {atEnd.Count} of its {partitions.Count} partitions within {limit} ({records.Count} records read). Is the broker at '{config.BootstrapServers}' reachable? Pass a longer timeout for a large topic.");
            }

            var result = consumer.Consume(PollInterval);
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                atEnd.Add(result.TopicPartition);
                continue;
            }

            atEnd.Remove(result.TopicPartition); // more arrived after the end was reported: read on
            records.Add(new InMemoryRecord(result.TopicPartition, result.Offset.Value, result.Message.Key, result.Message.Value, result.Message.Headers, result.Message.Timestamp));
        }

        consumer.Close();
        return [.. records.OrderBy(r => r.TopicPartition.Partition.Value).ThenBy(r => r.Offset)];
    }

    private static ConsumerConfig ReaderConfig(ConsumerConfig config)
    {
        var copy = new ConsumerConfig(config.ToDictionary(setting => setting.Key, setting => setting.Value, StringComparer.Ordinal))
        {
            GroupId = "kafkatx-topic-reader-" + Guid.NewGuid().ToString("N"), // assigned, never joined: no group is created
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            AllowAutoCreateTopics = false, // reading must not create the topic it reads
            AutoOffsetReset = AutoOffsetReset.Earliest,
        };
        copy.IsolationLevel ??= IsolationLevel.ReadCommitted;
        return copy;
    }

    /// <summary>The topic's partitions, from metadata asked through the consumer's own connection (which may not create topics).</summary>
    private static List<TopicPartition> Partitions(IConsumer<byte[]?, byte[]?> consumer, string topic, DateTime deadline, TimeSpan limit, CancellationToken cancellationToken)
    {
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException($"The partitions of topic '{topic}' could not be read from the broker's metadata within {limit}. Is the broker reachable?");
            }

            Metadata metadata;
            try
            {
                metadata = admin.GetMetadata(topic, remaining);
            }
            catch (KafkaException e) when (e.Error.Code is ErrorCode.Local_Transport or ErrorCode.Local_TimedOut or ErrorCode.Local_AllBrokersDown)
            {
                continue; // the deadline above ends this
            }

            var found = metadata.Topics.SingleOrDefault(t => t.Topic == topic);
            if (found is null || found.Error.Code == ErrorCode.UnknownTopicOrPart)
            {
                return [];
            }

            if (found.Error.Code == ErrorCode.NoError && found.Partitions.Count > 0)
            {
                return [.. found.Partitions.Select(p => new TopicPartition(topic, p.PartitionId)).OrderBy(p => p.Partition.Value)];
            }

            cancellationToken.WaitHandle.WaitOne(PollInterval); // a topic just created may have no leader yet: ask again until the deadline
        }
    }
}
