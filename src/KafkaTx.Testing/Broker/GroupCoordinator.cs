using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>The group coordinator: the consumer groups by group.id, each created when first joined or committed to. Every member runs under the cluster's lock.</summary>
internal sealed class GroupCoordinator(Topics topics, TimeProvider time)
{
    private readonly Dictionary<string, ConsumerGroup> _groups = new(StringComparer.Ordinal);

    /// <summary>The group, created if it does not exist.</summary>
    public ConsumerGroup For(string groupId)
    {
        if (!_groups.TryGetValue(groupId, out var group))
        {
            _groups[groupId] = group = new ConsumerGroup(groupId, topics, time);
        }

        return group;
    }

    /// <summary>The group, or null if nobody has joined or committed to it.</summary>
    public ConsumerGroup? Find(string groupId) => _groups.GetValueOrDefault(groupId);

    public long? CommittedOffset(string groupId, TopicPartition partition) => Find(groupId)?.Offsets.Of(partition);
}
