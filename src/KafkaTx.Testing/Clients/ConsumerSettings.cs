using Confluent.Kafka;

namespace KafkaTx.Testing.Clients;

/// <summary>What an in-memory consumer takes from its configuration, with librdkafka's defaults and spellings.</summary>
internal sealed class ConsumerSettings(ConsumerConfig config)
{
    public string? GroupId { get; } = config.GroupId;

    /// <summary>isolation.level: read_committed (librdkafka's default) stops at the last stable offset and skips aborted records.</summary>
    public IsolationLevel Isolation { get; } = Normalize(config.Get("isolation.level")) == "readuncommitted" ? IsolationLevel.ReadUncommitted : IsolationLevel.ReadCommitted;

    /// <summary>auto.offset.reset: where a partition without a committed offset starts; the end unless earliest.</summary>
    public bool ResetToEarliest { get; } = Normalize(config.Get("auto.offset.reset")) is "earliest" or "smallest" or "beginning";

    /// <summary>enable.partition.eof: report reaching the end of a partition, once each time.</summary>
    public bool ReportEof { get; } = Normalize(config.Get("enable.partition.eof")) == "true";

    /// <summary>group.protocol=consumer: the consumer group protocol of KIP-848 (Kafka 4), rather than the classic one.</summary>
    public bool UsesConsumerProtocol { get; } = Normalize(config.Get("group.protocol")) == "consumer";

    /// <summary>
    /// The eager protocol unless partition.assignment.strategy names the cooperative one; never with the consumer
    /// protocol, whose rebalances are incremental only.
    /// </summary>
    public bool IsEager { get; } = Normalize(config.Get("group.protocol")) != "consumer"
        && !(Normalize(config.Get("partition.assignment.strategy"))?.Contains("cooperative", StringComparison.Ordinal) ?? false);

    /// <summary>group.instance.id: a static member (KIP-345), whose next incarnation takes its partitions back at once.</summary>
    public string? GroupInstanceId { get; } = string.IsNullOrEmpty(config.GroupInstanceId) ? null : config.GroupInstanceId;

    /// <summary>
    /// session.timeout.ms: how long the group keeps the partitions of a member that stopped without leaving. With the
    /// consumer protocol it is the broker's (group.consumer.session.timeout.ms, 45 s by default).
    /// </summary>
    public TimeSpan SessionTimeout { get; } = TimeSpan.FromMilliseconds(config.SessionTimeoutMs ?? 45_000);

    /// <summary>
    /// Refuses, as librdkafka's consumer creation does (Confluent.Kafka raises its text as an InvalidOperationException),
    /// the settings that group.protocol=consumer moves to the broker or replaces.
    /// </summary>
    public static void Validate(ConsumerConfig config)
    {
        if (Normalize(config.Get("group.protocol")) != "consumer")
        {
            return;
        }

        if (config.Get("session.timeout.ms") is not null)
        {
            throw new InvalidOperationException("`session.timeout.ms` is not supported for `group.protocol=consumer` or share consumer. It is defined broker side");
        }

        if (config.Get("partition.assignment.strategy") is not null)
        {
            throw new InvalidOperationException("`partition.assignment.strategy` is not supported for `group.protocol=consumer`. Use `group.remote.assignor` instead");
        }

        if (config.Get("heartbeat.interval.ms") is not null)
        {
            throw new InvalidOperationException("`heartbeat.interval.ms` is not supported for `group.protocol=consumer` or share consumer. It is defined broker side");
        }
    }

    private static string? Normalize(string? value) => value?.Replace("_", string.Empty, StringComparison.Ordinal).Replace("-", string.Empty, StringComparison.Ordinal).ToLowerInvariant();
}
