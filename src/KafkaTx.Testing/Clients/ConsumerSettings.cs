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

    /// <summary>The eager protocol unless partition.assignment.strategy names the cooperative one.</summary>
    public bool IsEager { get; } = !(Normalize(config.Get("partition.assignment.strategy"))?.Contains("cooperative", StringComparison.Ordinal) ?? false);

    /// <summary>group.instance.id: a static member (KIP-345), whose next incarnation takes its partitions back at once.</summary>
    public string? GroupInstanceId { get; } = string.IsNullOrEmpty(config.GroupInstanceId) ? null : config.GroupInstanceId;

    /// <summary>session.timeout.ms: how long the group keeps the partitions of a member that stopped without leaving.</summary>
    public TimeSpan SessionTimeout { get; } = TimeSpan.FromMilliseconds(config.SessionTimeoutMs ?? 45_000);

    private static string? Normalize(string? value) => value?.Replace("_", string.Empty, StringComparison.Ordinal).Replace("-", string.Empty, StringComparison.Ordinal).ToLowerInvariant();
}
