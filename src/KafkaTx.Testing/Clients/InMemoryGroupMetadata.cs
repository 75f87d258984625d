using Confluent.Kafka;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// The consumer group metadata an in-memory consumer hands to SendOffsetsToTransaction: the group, the generation (with
/// the consumer protocol, the member epoch) and member id it had when read, and which group protocol it joined with.
/// </summary>
internal sealed class InMemoryGroupMetadata(string groupId, int generation, string memberId, bool consumerProtocol = false) : IConsumerGroupMetadata
{
    public string GroupId { get; } = groupId;

    public int Generation { get; } = generation;

    public string MemberId { get; } = memberId;

    /// <summary>group.protocol=consumer (KIP-848): the coordinator checks the member epoch of a transactional offset commit.</summary>
    public bool ConsumerProtocol { get; } = consumerProtocol;
}
