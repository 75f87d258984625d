using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>
/// Which member of a group owns each partition, and the rebalance that moves them. As in Kafka's rebalance protocol,
/// a partition is given to its new owner only after its previous owner has finished revoking it (its revoke callback
/// returned), so two members never own a partition at once. With the cooperative protocol only partitions that move
/// are revoked; with the eager one every member gives up everything first. Every member runs under the cluster's lock.
/// </summary>
internal sealed class PartitionOwnership
{
    private readonly Dictionary<TopicPartition, GroupMember> _owners = [];
    private readonly Dictionary<TopicPartition, GroupMember> _targets = [];
    private readonly HashSet<TopicPartition> _revoking = [];

    public int HeldByDepartedMembers => _owners.Values.Count(m => m.DepartedAt is not null);

    /// <summary>
    /// Deals the subscribed topics' partitions round-robin to the members subscribed to each (by member id), and tells
    /// each member what to revoke: everything when <paramref name="full"/> or the member is eager, otherwise what moves.
    /// </summary>
    public void Rebalance(IReadOnlyList<GroupMember> members, Topics topics, bool full)
    {
        _targets.Clear();
        var partitions = members
            .SelectMany(m => m.Subscription)
            .Distinct(StringComparer.Ordinal)
            .OrderBy(t => t, StringComparer.Ordinal)
            .SelectMany(topic => Enumerable.Range(0, topics.Partitions(topic).Length).Select(p => new TopicPartition(topic, p)))
            .ToList();
        var byId = members.OrderBy(m => m.MemberId, StringComparer.Ordinal).ToList();
        for (var i = 0; i < partitions.Count && byId.Count > 0; i++)
        {
            var candidates = byId.Where(m => m.Subscription.Contains(partitions[i].Topic)).ToList();
            if (candidates.Count > 0)
            {
                _targets[partitions[i]] = candidates[i % candidates.Count];
            }
        }

        foreach (var member in members)
        {
            var owned = Sorted(_owners.Where(o => o.Value == member && !_revoking.Contains(o.Key)).Select(o => o.Key));
            var revoke = full || member.IsEager ? owned : owned.Where(p => !_targets.TryGetValue(p, out var target) || target != member).ToList();
            if (revoke.Count > 0)
            {
                _revoking.UnionWith(revoke);
                member.Notify(new RebalanceEvent(RebalanceKind.Revoke, revoke));
            }
        }

        AssignFree();
    }

    /// <summary>The member's revoke callback returned: its partitions are free for their new owners.</summary>
    public void Revoked(GroupMember member, IReadOnlyList<TopicPartition> partitions)
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

    /// <summary>
    /// A static member's next incarnation takes over what the previous one owns and is to own; it finishes the revoke
    /// the previous one had started.
    /// </summary>
    public void HandOver(GroupMember previous, GroupMember member)
    {
        var owned = OwnedBy(previous);
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
            member.Notify(new RebalanceEvent(RebalanceKind.Assign, owned));
        }

        if (stillMoving.Count > 0)
        {
            // The previous incarnation was giving these up when it stopped: the new one finishes the revoke.
            member.Notify(new RebalanceEvent(RebalanceKind.Revoke, stillMoving));
        }

        AssignFree();
    }

    /// <summary>Takes away everything the member owns, revoking or not; returns what it owned.</summary>
    public List<TopicPartition> Release(GroupMember member)
    {
        var owned = OwnedBy(member);
        foreach (var partition in owned)
        {
            _owners.Remove(partition);
            _revoking.Remove(partition);
        }

        return owned;
    }

    private void AssignFree()
    {
        var grants = new Dictionary<GroupMember, List<TopicPartition>>();
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
            member.Notify(new RebalanceEvent(RebalanceKind.Assign, Sorted(list)));
        }
    }

    private List<TopicPartition> OwnedBy(GroupMember member) => Sorted(_owners.Where(o => o.Value == member).Select(o => o.Key));

    private static List<TopicPartition> Sorted(IEnumerable<TopicPartition> partitions) =>
        [.. partitions.OrderBy(p => p.Topic, StringComparer.Ordinal).ThenBy(p => p.Partition.Value)];
}
