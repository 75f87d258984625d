using Confluent.Kafka;

namespace KafkaTx.Testing.Clients;

/// <summary>The consumer group metadata an in-memory consumer hands to SendOffsetsToTransaction.</summary>
internal sealed class InMemoryGroupMetadata(string groupId, int generation, string memberId) : IConsumerGroupMetadata
{
    public string GroupId { get; } = groupId;

    public int Generation { get; } = generation;

    public string MemberId { get; } = memberId;
}
