using Confluent.Kafka;
using KafkaTx.Testing.Broker;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// A consumer's membership of its group: the member it joined as (kept once it has left, for its id and its
/// subscription), and the inbox where the group's rebalances wait for the consumer's next Consume. Every member runs
/// under the cluster's lock.
/// </summary>
internal sealed class GroupMembership(GroupCoordinator groups, TimeProvider time, ConsumerSettings settings)
{
    private GroupMember? _member;

    public RebalanceInbox Inbox { get; } = new();

    public string MemberId => _member?.MemberId ?? string.Empty;

    /// <summary>The group, while the consumer is a member of it.</summary>
    public ConsumerGroup? Group => _member?.Group;

    /// <summary>A newer consumer with the same group.instance.id took this one's place.</summary>
    public bool IsFenced => _member?.IsFenced == true;

    public List<string> Subscription => _member is null ? [] : [.. _member.Subscription];

    /// <summary>
    /// The group refused the consumer's join (UNRELEASED_INSTANCE_ID, consumer protocol): a fatal consumer error that
    /// every Consume raises, as librdkafka does.
    /// </summary>
    public Error? Refusal { get; private set; }

    public IConsumerGroupMetadata Metadata(string groupId) => new InMemoryGroupMetadata(groupId, Group?.Generation ?? -1, MemberId, settings.UsesConsumerProtocol);

    /// <summary>Joins the group as a new member, or, already a member, changes the subscription and rebalances.</summary>
    public void Subscribe(string groupId, IEnumerable<string> topics)
    {
        if (_member is { Group: { } current })
        {
            _member.Subscribe(topics);
            current.Rebalance(full: settings.IsEager);
            return;
        }

        var group = groups.For(groupId);
        var member = new GroupMember(group, group.NewMemberId(), settings.GroupInstanceId, settings.SessionTimeout, settings.IsEager, Inbox);
        member.Subscribe(topics);
        if (settings.UsesConsumerProtocol && group.HoldsInstanceId(settings.GroupInstanceId))
        {
            // KIP-848: the newcomer is refused while the holder lives or its session has not expired; the holder stays.
            Refusal = new Error(ErrorCode.UnreleasedInstanceId, $"Fatal consumer error: the group.instance.id '{settings.GroupInstanceId}' is still held by another member of group '{groupId}'", true);
            return;
        }

        _member = member;
        group.Join(_member);
    }

    public void Unsubscribe()
    {
        if (_member is null)
        {
            return;
        }

        _member.Subscribe([]);
        _member.Group?.Leave(_member);
        _member.Detach();
    }

    /// <summary>
    /// Close: a dynamic member leaves the group at once. A static member does not (as librdkafka sends no LeaveGroup
    /// for it): its partitions wait for its next incarnation, or for its session to time out.
    /// </summary>
    public void Leave()
    {
        if (_member is not { Group: { } group })
        {
            return;
        }

        if (settings.GroupInstanceId is not null)
        {
            group.Depart(_member, time.GetTimestamp());
        }
        else
        {
            group.Leave(_member);
        }

        _member.Detach();
    }

    /// <summary>The process died: the group keeps the member, and its partitions, until its session times out.</summary>
    public void Crash(long timestamp)
    {
        if (_member is { Group: { } group })
        {
            group.Depart(_member, timestamp);
        }
    }

    /// <summary>The test threw the member out of its group (InMemoryKafkaCluster.ExpireMember).</summary>
    public void Expire()
    {
        if (_member is { Group: { } group })
        {
            group.Expire(_member);
        }
    }

    /// <summary>Lets the group drop members whose session has timed out.</summary>
    public void ExpireDeparted() => Group?.ExpireDeparted();

    /// <summary>The consumer's revoke callback returned: the partitions may go to their new owners.</summary>
    public void Revoked(IReadOnlyList<TopicPartition> partitions)
    {
        if (_member is { Group: { } group })
        {
            group.Revoked(_member, partitions);
        }
    }
}
