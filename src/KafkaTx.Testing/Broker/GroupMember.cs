namespace KafkaTx.Testing.Broker;

/// <summary>
/// A member of a consumer group, as the coordinator knows it: its id, its consumer's group.instance.id, session
/// timeout, protocol and subscription; whether it stopped without leaving or was fenced by a newer incarnation; and the
/// inbox of the consumer it stands for. Every member runs under the cluster's lock.
/// </summary>
internal sealed class GroupMember(ConsumerGroup group, string memberId, string? groupInstanceId, TimeSpan sessionTimeout, bool isEager, RebalanceInbox inbox)
{
    private readonly HashSet<string> _subscription = new(StringComparer.Ordinal);

    public string MemberId { get; } = memberId;

    /// <summary>group.instance.id: a static member (KIP-345), whose next incarnation takes its partitions back at once.</summary>
    public string? GroupInstanceId { get; } = groupInstanceId;

    /// <summary>session.timeout.ms: how long the group keeps the partitions of a member that stopped without leaving.</summary>
    public TimeSpan SessionTimeout { get; } = sessionTimeout;

    /// <summary>The eager protocol: every rebalance revokes all of the member's partitions, not only those that move.</summary>
    public bool IsEager { get; } = isEager;

    public IReadOnlySet<string> Subscription => _subscription;

    /// <summary>The group, until the member leaves it, is thrown out, or is replaced by its next incarnation.</summary>
    public ConsumerGroup? Group { get; private set; } = group;

    /// <summary>When the member stopped without leaving the group (a crash, or a static member's close); null while it runs.</summary>
    public long? DepartedAt { get; private set; }

    /// <summary>A newer incarnation with the same group.instance.id joined: this one is a zombie.</summary>
    public bool IsFenced { get; private set; }

    public void Subscribe(IEnumerable<string> topics)
    {
        _subscription.Clear();
        _subscription.UnionWith(topics);
    }

    public void Depart(long timestamp) => DepartedAt ??= timestamp;

    public void Fence() => IsFenced = true;

    public void Detach() => Group = null;

    public void Notify(RebalanceEvent rebalance) => inbox.Enqueue(rebalance);
}
