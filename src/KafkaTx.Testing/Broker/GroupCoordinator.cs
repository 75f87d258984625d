using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>The group coordinator: the consumer groups by group.id, each created when first joined or committed to. Every member runs under the cluster's lock.</summary>
internal sealed class GroupCoordinator(Topics topics, TimeProvider time)
{
    private readonly Dictionary<string, ConsumerGroup> _groups = new(StringComparer.Ordinal);
    private readonly HashSet<string> _unreachable = new(StringComparer.Ordinal);

    /// <summary>Groups whose coordinator a test made unreachable: offset commits to them fail, fetching goes on.</summary>
    public void SetUnreachable(string groupId, bool unreachable)
    {
        if (unreachable)
        {
            _unreachable.Add(groupId);
        }
        else
        {
            _unreachable.Remove(groupId);
        }
    }

    /// <summary>Whether the group's coordinator is unreachable (InMemoryKafkaCluster.SetGroupCoordinatorUnavailable).</summary>
    public bool IsUnreachable(string groupId) => _unreachable.Contains(groupId);

    /// <summary>The error an offset commit to an unreachable coordinator fails with: COORDINATOR_NOT_AVAILABLE.</summary>
    public static Error Unreachable(string groupId) =>
        new(ErrorCode.GroupCoordinatorNotAvailable, $"Failed to commit offsets: Broker: Coordinator not available (group '{groupId}')");

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
