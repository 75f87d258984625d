using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>
/// A consumer group: its members and generation, and the offsets it committed. Members join, leave, stop without
/// leaving (kept until their session times out), are thrown out, or, static ones, are replaced by their next
/// incarnation; each change rebalances the group's partitions (<see cref="PartitionOwnership"/>). Every member runs
/// under the cluster's lock.
/// </summary>
internal sealed class ConsumerGroup(string groupId, Topics topics, TimeProvider time)
{
    private readonly List<GroupMember> _members = [];
    private readonly PartitionOwnership _ownership = new();
    private int _nextMember;

    public string GroupId { get; } = groupId;

    public CommittedOffsets Offsets { get; } = new();

    public int Generation { get; private set; }

    /// <summary>Members, the departed ones that still hold their place included.</summary>
    public int MemberCount => _members.Count;

    /// <summary>Partitions owned by a member that has stopped (crashed, or a static member that closed) and not yet expired.</summary>
    public int PartitionsHeldByDepartedMembers => _ownership.HeldByDepartedMembers;

    /// <summary>
    /// Whether a member (running, or stopped without leaving and within its session) holds the group.instance.id. Used
    /// for the consumer protocol (KIP-848), where the coordinator refuses a newcomer with a held instance id.
    /// </summary>
    public bool HoldsInstanceId(string? instanceId)
    {
        ExpireDeparted();
        return instanceId is not null && _members.Exists(m => m.GroupInstanceId == instanceId);
    }

    /// <summary>The member with the id, while it belongs to the group (a departed one within its session included).</summary>
    public GroupMember? FindMember(string memberId) => _members.Find(m => m.MemberId == memberId);

    public string NewMemberId() => $"{GroupId}-member-{++_nextMember}";

    public void Join(GroupMember member)
    {
        ExpireDeparted();
        if (member.GroupInstanceId is { } instanceId && _members.Find(m => m.GroupInstanceId == instanceId) is { } previous)
        {
            TakeOver(previous, member);
            return;
        }

        // Eager members give up everything at every rebalance anyway; an eager newcomer does not make the others (a
        // consumer-protocol member of a group mixing both protocols, say) revoke what stays theirs.
        _members.Add(member);
        Rebalance(full: false);
    }

    /// <summary>
    /// A member stopped without leaving (it crashed, or it is static and closed): it keeps its partitions, and the
    /// group waits for it, until its session times out or, for a static member, its next incarnation joins.
    /// </summary>
    public void Depart(GroupMember member, long timestamp)
    {
        if (_members.Contains(member))
        {
            member.Depart(timestamp);
        }
    }

    /// <summary>The coordinator's session timeout: members that stopped longer ago than their session.timeout.ms are removed, and their partitions reassigned.</summary>
    public void ExpireDeparted()
    {
        List<GroupMember>? expired = null;
        foreach (var member in _members)
        {
            if (member.DepartedAt is { } departedAt && time.GetElapsedTime(departedAt) >= member.SessionTimeout)
            {
                (expired ??= []).Add(member);
            }
        }

        if (expired is null)
        {
            return;
        }

        foreach (var member in expired)
        {
            _ownership.Release(member);
            _members.Remove(member);
            member.Detach();
        }

        Rebalance(full: false);
    }

    /// <summary>A member left after revoking its partitions itself (Close).</summary>
    public void Leave(GroupMember member)
    {
        _members.Remove(member);
        _ownership.Release(member);
        Rebalance(full: false);
    }

    /// <summary>A member is thrown out: it loses its partitions, which go to the others at once.</summary>
    public void Expire(GroupMember member)
    {
        var owned = _ownership.Release(member);
        if (owned.Count > 0)
        {
            member.Notify(new RebalanceEvent(RebalanceKind.Lost, owned));
        }

        _members.Remove(member);
        member.Detach();
        Rebalance(full: false);
    }

    /// <summary>A new generation: the partitions are dealt again; <paramref name="full"/> makes every member give up everything first, as an eager rebalance does.</summary>
    public void Rebalance(bool full)
    {
        Generation++;
        _ownership.Rebalance(_members, topics, full);
    }

    /// <summary>The member's revoke callback returned: its partitions are free for their new owners.</summary>
    public void Revoked(GroupMember member, IReadOnlyList<TopicPartition> partitions) => _ownership.Revoked(member, partitions);

    /// <summary>
    /// KIP-345: a static member's new incarnation takes the place, and the partitions, of the previous one at once,
    /// without a rebalance. A previous incarnation that still runs is fenced (FENCED_INSTANCE_ID at its next call).
    /// </summary>
    private void TakeOver(GroupMember previous, GroupMember member)
    {
        _members[_members.IndexOf(previous)] = member;
        if (previous.DepartedAt is null)
        {
            previous.Fence();
        }

        previous.Detach();
        _ownership.HandOver(previous, member);
    }
}
