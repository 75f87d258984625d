using Confluent.Kafka;

namespace KafkaTx.Testing;

/// <summary>
/// A consumer group: members, committed offsets, and partition ownership. As in Kafka's rebalance protocol, a
/// partition is given to its new owner only after its previous owner has finished revoking it (its revoke callback
/// returned), so two members never own a partition at once. With the cooperative protocol only partitions that move
/// are revoked; with the eager one every member gives up everything first. All methods run under the cluster's lock.
/// </summary>
internal sealed class ConsumerGroup(string groupId)
{
    private readonly List<InMemoryConsumer> _members = [];
    private readonly Dictionary<TopicPartition, InMemoryConsumer> _owners = [];
    private readonly Dictionary<TopicPartition, InMemoryConsumer> _targets = [];
    private readonly HashSet<TopicPartition> _revoking = [];
    private int _nextMember;

    public string GroupId { get; } = groupId;

    public Dictionary<TopicPartition, long> Offsets { get; } = [];

    public int Generation { get; private set; }

    /// <summary>Members, the departed ones that still hold their place included.</summary>
    public int MemberCount => _members.Count;

    /// <summary>Partitions owned by a member that has stopped (crashed, or a static member that closed) and not yet expired.</summary>
    public int PartitionsHeldByDepartedMembers => _owners.Values.Count(m => m.DepartedAt is not null);

    public string NewMemberId() => $"{GroupId}-member-{++_nextMember}";

    public void Join(InMemoryKafkaCluster cluster, InMemoryConsumer member)
    {
        ExpireDeparted(cluster);
        if (member.GroupInstanceId is { } instanceId && _members.Find(m => m.GroupInstanceId == instanceId) is { } previous)
        {
            TakeOver(previous, member);
            return;
        }

        _members.Add(member);
        Rebalance(cluster, full: member.IsEager);
    }

    /// <summary>
    /// A member stopped without leaving (it crashed, or it is static and closed): it keeps its partitions, and the
    /// group waits for it, until its session times out or, for a static member, its next incarnation joins.
    /// </summary>
    public void Depart(InMemoryConsumer member, long timestamp)
    {
        if (_members.Contains(member))
        {
            member.DepartedAt ??= timestamp;
        }
    }

    /// <summary>The coordinator's session timeout: members that stopped longer ago than their session.timeout.ms are removed, and their partitions reassigned.</summary>
    public void ExpireDeparted(InMemoryKafkaCluster cluster)
    {
        List<InMemoryConsumer>? expired = null;
        foreach (var member in _members)
        {
            if (member.DepartedAt is { } departedAt && cluster.Time.GetElapsedTime(departedAt) >= member.SessionTimeout)
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
            Release(member);
            _members.Remove(member);
            member.Group = null;
        }

        Rebalance(cluster, full: false);
    }

    /// <summary>
    /// KIP-345: a static member's new incarnation takes the place, and the partitions, of the previous one at once,
    /// without a rebalance. A previous incarnation that still runs is fenced (FENCED_INSTANCE_ID at its next call).
    /// </summary>
    private void TakeOver(InMemoryConsumer previous, InMemoryConsumer member)
    {
        _members[_members.IndexOf(previous)] = member;
        if (previous.DepartedAt is null)
        {
            previous.FencedInstance = true;
        }

        previous.Group = null;
        var owned = Sorted(_owners.Where(o => o.Value == previous).Select(o => o.Key));
        var stillMoving = owned.Where(_revoking.Contains).ToList();
        foreach (var partition in owned)
        {
            _owners[partition] = member;
        }

        foreach (var (partition, target) in _targets.ToList())
        {
            if (target == previous)
            {
                _targets[partition] = member;
            }
        }

        if (owned.Count > 0)
        {
            member.Enqueue(new RebalanceEvent(RebalanceKind.Assign, owned));
        }

        if (stillMoving.Count > 0)
        {
            // The previous incarnation was giving these up when it stopped: the new one finishes the revoke.
            member.Enqueue(new RebalanceEvent(RebalanceKind.Revoke, stillMoving));
        }

        AssignFree();
    }

    /// <summary>A member left after revoking its partitions itself (Close).</summary>
    public void Leave(InMemoryKafkaCluster cluster, InMemoryConsumer member)
    {
        _members.Remove(member);
        Release(member);
        Rebalance(cluster, full: false);
    }

    /// <summary>A member is thrown out: it loses its partitions, which go to the others at once.</summary>
    public void Expire(InMemoryKafkaCluster cluster, InMemoryConsumer member)
    {
        var owned = Release(member);
        if (owned.Count > 0)
        {
            member.Enqueue(new RebalanceEvent(RebalanceKind.Lost, owned));
        }

        _members.Remove(member);
        member.Group = null;
        Rebalance(cluster, full: false);
    }

    public void Rebalance(InMemoryKafkaCluster cluster, bool full)
    {
        Generation++;
        _targets.Clear();
        var partitions = _members
            .SelectMany(m => m.Subscription)
            .Distinct(StringComparer.Ordinal)
            .OrderBy(t => t, StringComparer.Ordinal)
            .SelectMany(topic => Enumerable.Range(0, cluster.Topic(topic).Length).Select(p => new TopicPartition(topic, p)))
            .ToList();
        var members = _members.OrderBy(m => m.MemberId, StringComparer.Ordinal).ToList();
        for (var i = 0; i < partitions.Count && members.Count > 0; i++)
        {
            var candidates = members.Where(m => m.Subscription.Contains(partitions[i].Topic)).ToList();
            if (candidates.Count > 0)
            {
                _targets[partitions[i]] = candidates[i % candidates.Count];
            }
        }

        foreach (var member in _members)
        {
            var owned = Sorted(_owners.Where(o => o.Value == member && !_revoking.Contains(o.Key)).Select(o => o.Key));
            var revoke = full || member.IsEager ? owned : owned.Where(p => !_targets.TryGetValue(p, out var target) || target != member).ToList();
            if (revoke.Count > 0)
            {
                _revoking.UnionWith(revoke);
                member.Enqueue(new RebalanceEvent(RebalanceKind.Revoke, revoke));
            }
        }

        AssignFree();
    }

    /// <summary>The member's revoke callback returned: its partitions are free for their new owners.</summary>
    public void Revoked(InMemoryConsumer member, IReadOnlyList<TopicPartition> partitions)
    {
        foreach (var partition in partitions)
        {
            _revoking.Remove(partition);
            if (_owners.TryGetValue(partition, out var owner) && owner == member)
            {
                _owners.Remove(partition);
            }
        }

        AssignFree();
    }

    private void AssignFree()
    {
        var grants = new Dictionary<InMemoryConsumer, List<TopicPartition>>();
        foreach (var (partition, target) in _targets)
        {
            if (!_owners.ContainsKey(partition) && !_revoking.Contains(partition))
            {
                _owners[partition] = target;
                if (!grants.TryGetValue(target, out var list))
                {
                    grants[target] = list = [];
                }

                list.Add(partition);
            }
        }

        foreach (var (member, list) in grants)
        {
            member.Enqueue(new RebalanceEvent(RebalanceKind.Assign, Sorted(list)));
        }
    }

    private static List<TopicPartition> Sorted(IEnumerable<TopicPartition> partitions) =>
        [.. partitions.OrderBy(p => p.Topic, StringComparer.Ordinal).ThenBy(p => p.Partition.Value)];

    private List<TopicPartition> Release(InMemoryConsumer member)
    {
        var owned = Sorted(_owners.Where(o => o.Value == member).Select(o => o.Key));
        foreach (var partition in owned)
        {
            _owners.Remove(partition);
            _revoking.Remove(partition);
        }

        return owned;
    }
}

internal enum RebalanceKind
{
    Assign,
    Revoke,
    Lost,
}

internal sealed record RebalanceEvent(RebalanceKind Kind, List<TopicPartition> Partitions);
