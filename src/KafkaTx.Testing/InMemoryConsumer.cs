using Confluent.Kafka;

namespace KafkaTx.Testing;

/// <summary>
/// A consumer over an <see cref="InMemoryKafkaCluster"/>. Rebalance callbacks run on the thread that calls Consume,
/// before Consume returns, as in Confluent.Kafka. Read with read_committed (librdkafka's default), it stops at the
/// last stable offset and skips aborted records and markers; its position moves past what it skipped.
/// </summary>
internal sealed class InMemoryConsumer : IConsumer<byte[]?, byte[]?>, IInMemoryClient
{
    private readonly InMemoryKafkaCluster _cluster;
    private readonly ConsumerEventHandlers? _handlers;
    private readonly string? _groupId;
    private readonly IsolationLevel _isolation;
    private readonly bool _resetToEarliest;
    private readonly bool _reportEof;
    private readonly Queue<RebalanceEvent> _events = new();
    private readonly List<TopicPartition> _assignment = [];
    private readonly Dictionary<TopicPartition, long> _positions = [];
    private readonly HashSet<TopicPartition> _paused = [];
    private readonly HashSet<TopicPartition> _eofReported = [];
    private int _next;
    private bool _closed;
    private bool _crashed;

    public InMemoryConsumer(InMemoryKafkaCluster cluster, ConsumerConfig config, ConsumerEventHandlers? handlers)
    {
        _cluster = cluster;
        _handlers = handlers;
        _groupId = config.GroupId;
        _isolation = Normalize(config.Get("isolation.level")) == "readuncommitted" ? IsolationLevel.ReadUncommitted : IsolationLevel.ReadCommitted;
        _resetToEarliest = Normalize(config.Get("auto.offset.reset")) is "earliest" or "smallest" or "beginning";
        _reportEof = Normalize(config.Get("enable.partition.eof")) == "true";
        IsEager = !(Normalize(config.Get("partition.assignment.strategy"))?.Contains("cooperative", StringComparison.Ordinal) ?? false);
        GroupInstanceId = string.IsNullOrEmpty(config.GroupInstanceId) ? null : config.GroupInstanceId;
        SessionTimeout = TimeSpan.FromMilliseconds(config.SessionTimeoutMs ?? 45_000);
        MemberId = string.Empty;
    }

    /// <summary>group.instance.id: a static member (KIP-345), whose next incarnation takes its partitions back at once.</summary>
    internal string? GroupInstanceId { get; }

    /// <summary>session.timeout.ms: how long the group keeps the partitions of a member that stopped without leaving.</summary>
    internal TimeSpan SessionTimeout { get; }

    /// <summary>When the member stopped without leaving the group (a crash, or a static member's close); null while it runs.</summary>
    internal long? DepartedAt { get; set; }

    /// <summary>A newer incarnation with the same group.instance.id joined: this one is a zombie.</summary>
    internal bool FencedInstance { get; set; }

    internal ConsumerGroup? Group { get; set; }

    internal bool IsEager { get; }

    internal HashSet<string> Subscription { get; } = new(StringComparer.Ordinal);

    public string MemberId { get; private set; }

    public Handle Handle => throw new NotSupportedException("An in-memory consumer has no librdkafka handle.");

    public string Name => $"in-memory-consumer-{_groupId}";

    List<string> IConsumer<byte[]?, byte[]?>.Subscription
    {
        get
        {
            lock (_cluster.Sync)
            {
                return [.. Subscription];
            }
        }
    }

    public List<TopicPartition> Assignment
    {
        get
        {
            lock (_cluster.Sync)
            {
                return [.. _assignment];
            }
        }
    }

    public IConsumerGroupMetadata ConsumerGroupMetadata
    {
        get
        {
            lock (_cluster.Sync)
            {
                return new InMemoryGroupMetadata(RequireGroupId(), Group?.Generation ?? -1, MemberId);
            }
        }
    }

    internal void Enqueue(RebalanceEvent rebalance) => _events.Enqueue(rebalance);

    // ---------------------------------------------------------------- subscription and assignment

    public void Subscribe(IEnumerable<string> topics)
    {
        ArgumentNullException.ThrowIfNull(topics);
        lock (_cluster.Sync)
        {
            ThrowIfClosed();
            var groupId = RequireGroupId();
            Subscription.Clear();
            Subscription.UnionWith(topics);
            if (Group is null)
            {
                Group = _cluster.GroupFor(groupId);
                MemberId = Group.NewMemberId();
                Group.Join(_cluster, this);
            }
            else
            {
                Group.Rebalance(_cluster, full: IsEager);
            }

            Monitor.PulseAll(_cluster.Sync);
        }
    }

    public void Subscribe(string topic) => Subscribe([topic]);

    public void Unsubscribe()
    {
        RevokeAllForLeaving();
        lock (_cluster.Sync)
        {
            Subscription.Clear();
            Group?.Leave(_cluster, this);
            Group = null;
            Monitor.PulseAll(_cluster.Sync);
        }
    }

    public void Assign(TopicPartition partition) => Assign([new TopicPartitionOffset(partition, Offset.Unset)]);

    public void Assign(TopicPartitionOffset partition) => Assign([partition]);

    public void Assign(IEnumerable<TopicPartition> partitions) => Assign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)));

    public void Assign(IEnumerable<TopicPartitionOffset> partitions)
    {
        lock (_cluster.Sync)
        {
            _assignment.Clear();
            _positions.Clear();
            _eofReported.Clear();
            AddAssignment(partitions);
        }
    }

    public void IncrementalAssign(IEnumerable<TopicPartitionOffset> partitions)
    {
        lock (_cluster.Sync)
        {
            AddAssignment(partitions);
        }
    }

    public void IncrementalAssign(IEnumerable<TopicPartition> partitions) => IncrementalAssign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)));

    public void IncrementalUnassign(IEnumerable<TopicPartition> partitions)
    {
        lock (_cluster.Sync)
        {
            RemoveAssignment([.. partitions]);
        }
    }

    public void Unassign()
    {
        lock (_cluster.Sync)
        {
            _assignment.Clear();
            _positions.Clear();
        }
    }

    // ---------------------------------------------------------------- consuming

    public ConsumeResult<byte[]?, byte[]?>? Consume(TimeSpan timeout)
    {
        // The wait is the client's own, in real time; the cluster's clock (which a test may hold still) governs only the
        // broker's timeouts: sessions and transactions.
        var deadline = TimeProvider.System.GetTimestamp() + (long)(Math.Max(0, timeout.TotalSeconds) * TimeProvider.System.TimestampFrequency);
        while (true)
        {
            DeliverRebalances();
            lock (_cluster.Sync)
            {
                ThrowIfClosed();
                if (_events.Count > 0)
                {
                    continue;
                }

                Group?.ExpireDeparted(_cluster);
                _cluster.ExpireTransactions();
                if (NextRecord() is { } record)
                {
                    return record;
                }

                var remaining = TimeSpan.FromSeconds((double)(deadline - TimeProvider.System.GetTimestamp()) / TimeProvider.System.TimestampFrequency);
                if (remaining <= TimeSpan.Zero)
                {
                    return null;
                }

                // Woken by any produce, commit, abort or rebalance; a short cap lets transaction timeouts expire.
                Monitor.Wait(_cluster.Sync, remaining < TimeSpan.FromMilliseconds(50) ? remaining : TimeSpan.FromMilliseconds(50));
            }
        }
    }

    public ConsumeResult<byte[]?, byte[]?>? Consume(int millisecondsTimeout) => Consume(TimeSpan.FromMilliseconds(millisecondsTimeout));

    public ConsumeResult<byte[]?, byte[]?> Consume(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (Consume(TimeSpan.FromMilliseconds(100)) is { } result)
            {
                return result;
            }
        }
    }

    private ConsumeResult<byte[]?, byte[]?>? NextRecord()
    {
        var count = _assignment.Count;
        for (var i = 0; i < count; i++)
        {
            var partition = _assignment[(_next + i) % count];
            if (_paused.Contains(partition))
            {
                continue;
            }

            var log = _cluster.Log(partition);
            // Records deleted under the position: go on from the log start, as a consumer reset to the earliest offset.
            var position = Math.Max(_positions[partition], log.LogStartOffset);
            var end = log.End(_isolation);
            while (position < end && !log.IsVisible(position, _isolation))
            {
                position++; // past markers and aborted records, as the position of a Kafka consumer moves
            }

            _positions[partition] = position;
            if (position < end)
            {
                ref readonly var entry = ref log.Entry(position);
                _positions[partition] = position + 1;
                _eofReported.Remove(partition);
                _next = (_next + i + 1) % count;
                return new ConsumeResult<byte[]?, byte[]?>
                {
                    TopicPartitionOffset = new TopicPartitionOffset(partition, position),
                    Message = new Message<byte[]?, byte[]?> { Key = entry.Key, Value = entry.Value, Headers = entry.Headers, Timestamp = entry.Timestamp },
                };
            }

            if (_reportEof && _eofReported.Add(partition))
            {
                return new ConsumeResult<byte[]?, byte[]?> { TopicPartitionOffset = new TopicPartitionOffset(partition, position), IsPartitionEOF = true };
            }
        }

        return null;
    }

    private void DeliverRebalances()
    {
        while (true)
        {
            RebalanceEvent? rebalance;
            List<TopicPartitionOffset> withPositions;
            lock (_cluster.Sync)
            {
                if (!_events.TryDequeue(out rebalance))
                {
                    return;
                }

                if (rebalance.Kind == RebalanceKind.Assign)
                {
                    AddAssignment(rebalance.Partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)));
                }

                withPositions = [.. rebalance.Partitions.Select(p => new TopicPartitionOffset(p, _positions.TryGetValue(p, out var position) ? position : Offset.Unset))];
            }

            // Callbacks run outside the lock: they may produce, commit or abort through the same cluster.
            switch (rebalance.Kind)
            {
                case RebalanceKind.Assign:
                    _handlers?.PartitionsAssigned(rebalance.Partitions);
                    break;
                case RebalanceKind.Revoke:
                    _handlers?.PartitionsRevoked(withPositions);
                    lock (_cluster.Sync)
                    {
                        RemoveAssignment(rebalance.Partitions);
                        Group?.Revoked(this, rebalance.Partitions);
                        Monitor.PulseAll(_cluster.Sync);
                    }

                    break;
                default:
                    _handlers?.PartitionsLost(withPositions);
                    lock (_cluster.Sync)
                    {
                        RemoveAssignment(rebalance.Partitions);
                    }

                    break;
            }
        }
    }

    private void AddAssignment(IEnumerable<TopicPartitionOffset> partitions)
    {
        foreach (var requested in partitions)
        {
            var partition = requested.TopicPartition;
            var log = _cluster.Log(partition);
            long position;
            if (requested.Offset == Offset.Beginning)
            {
                position = 0;
            }
            else if (requested.Offset == Offset.End)
            {
                position = log.HighWatermark;
            }
            else if (requested.Offset.Value >= 0)
            {
                position = requested.Offset.Value;
            }
            else if (_groupId is not null && Group?.Offsets.TryGetValue(partition, out var committed) == true)
            {
                position = committed;
            }
            else if (_groupId is not null && _cluster.CommittedOffset(_groupId, partition) is { } stored)
            {
                position = stored;
            }
            else
            {
                position = _resetToEarliest ? 0 : log.HighWatermark;
            }

            if (!_assignment.Contains(partition))
            {
                _assignment.Add(partition);
            }

            _positions[partition] = position;
            _eofReported.Remove(partition);
        }
    }

    private void RemoveAssignment(IReadOnlyCollection<TopicPartition> partitions)
    {
        _assignment.RemoveAll(partitions.Contains);
        foreach (var partition in partitions)
        {
            _positions.Remove(partition);
            _eofReported.Remove(partition);
        }
    }

    // ---------------------------------------------------------------- offsets

    public Offset Position(TopicPartition partition)
    {
        lock (_cluster.Sync)
        {
            return _positions.TryGetValue(partition, out var position) ? position : Offset.Unset;
        }
    }

    public void Seek(TopicPartitionOffset tpo)
    {
        ArgumentNullException.ThrowIfNull(tpo);
        lock (_cluster.Sync)
        {
            if (!_positions.ContainsKey(tpo.TopicPartition))
            {
                throw new KafkaException(new Error(ErrorCode.Local_State, $"Local: Erroneous state: {tpo.TopicPartition} is not assigned"));
            }

            _positions[tpo.TopicPartition] = tpo.Offset == Offset.Beginning ? 0 : tpo.Offset == Offset.End ? _cluster.Log(tpo.TopicPartition).HighWatermark : tpo.Offset.Value;
            _eofReported.Remove(tpo.TopicPartition);
        }
    }

    public List<TopicPartitionOffset> Committed(IEnumerable<TopicPartition> partitions, TimeSpan timeout)
    {
        var groupId = RequireGroupId();
        return [.. partitions.Select(p => new TopicPartitionOffset(p, _cluster.CommittedOffset(groupId, p) is { } offset ? new Offset(offset) : Offset.Unset))];
    }

    public List<TopicPartitionOffset> Committed(TimeSpan timeout) => Committed(Assignment, timeout);

    public void Commit(IEnumerable<TopicPartitionOffset> offsets)
    {
        lock (_cluster.Sync)
        {
            var group = _cluster.GroupFor(RequireGroupId());
            foreach (var offset in offsets)
            {
                group.Offsets[offset.TopicPartition] = offset.Offset.Value;
            }
        }
    }

    public void Commit(ConsumeResult<byte[]?, byte[]?> result) => Commit([new TopicPartitionOffset(result.TopicPartition, result.Offset + 1)]);

    public List<TopicPartitionOffset> Commit()
    {
        var positions = Assignment.Select(p => new TopicPartitionOffset(p, Position(p))).Where(p => p.Offset.Value >= 0).ToList();
        Commit(positions);
        return positions;
    }

    public void StoreOffset(ConsumeResult<byte[]?, byte[]?> result) => throw new NotSupportedException("The in-memory consumer commits only explicitly or through transactions.");

    public void StoreOffset(TopicPartitionOffset offset) => throw new NotSupportedException("The in-memory consumer commits only explicitly or through transactions.");

    public void Pause(IEnumerable<TopicPartition> partitions)
    {
        lock (_cluster.Sync)
        {
            _paused.UnionWith(partitions);
        }
    }

    public void Resume(IEnumerable<TopicPartition> partitions)
    {
        lock (_cluster.Sync)
        {
            _paused.ExceptWith(partitions);
        }
    }

    public WatermarkOffsets GetWatermarkOffsets(TopicPartition topicPartition) => QueryWatermarkOffsets(topicPartition, TimeSpan.Zero);

    public WatermarkOffsets QueryWatermarkOffsets(TopicPartition topicPartition, TimeSpan timeout)
    {
        lock (_cluster.Sync)
        {
            return new WatermarkOffsets(0, _cluster.Log(topicPartition).HighWatermark);
        }
    }

    public List<TopicPartitionOffset> OffsetsForTimes(IEnumerable<TopicPartitionTimestamp> timestampsToSearch, TimeSpan timeout) =>
        throw new NotSupportedException("OffsetsForTimes is not emulated by the in-memory cluster.");

    // ---------------------------------------------------------------- closing

    public void Close()
    {
        if (_closed || _crashed)
        {
            return;
        }

        RevokeAllForLeaving();
        lock (_cluster.Sync)
        {
            LeaveGroup();
            _closed = true;
            Monitor.PulseAll(_cluster.Sync);
        }

        _cluster.Closed(this);
    }

    public void Dispose()
    {
        lock (_cluster.Sync)
        {
            if (!_closed && !_crashed)
            {
                LeaveGroup();
                _closed = true;
                Monitor.PulseAll(_cluster.Sync);
            }
        }

        _cluster.Closed(this);
    }

    void IInMemoryClient.Crash(long timestamp)
    {
        // Under the cluster's lock: the group keeps the member, and its partitions, until its session times out.
        _crashed = true;
        Group?.Depart(this, timestamp);
    }

    /// <summary>
    /// A dynamic member leaves the group at once. A static member does not (as librdkafka sends no LeaveGroup for it):
    /// its partitions wait for its next incarnation, or for its session to time out.
    /// </summary>
    private void LeaveGroup()
    {
        if (GroupInstanceId is not null)
        {
            Group?.Depart(this, _cluster.Time.GetTimestamp());
        }
        else
        {
            Group?.Leave(_cluster, this);
        }

        Group = null;
    }

    public int AddBrokers(string brokers) => 0;

    public void SetSaslCredentials(string username, string password)
    {
    }

    /// <summary>Leaving the group revokes what the member owns, through its callback, as Close does in Confluent.Kafka.</summary>
    private void RevokeAllForLeaving()
    {
        List<TopicPartitionOffset> owned;
        lock (_cluster.Sync)
        {
            if (Group is null || _assignment.Count == 0)
            {
                return;
            }

            owned = [.. _assignment.Select(p => new TopicPartitionOffset(p, _positions[p]))];
        }

        _handlers?.PartitionsRevoked(owned);
        lock (_cluster.Sync)
        {
            _assignment.Clear();
            _positions.Clear();
        }
    }

    private string RequireGroupId() =>
        _groupId ?? throw new KafkaException(new Error(ErrorCode.Local_InvalidArg, "group.id is required for subscribe, committed offsets and group metadata"));

    private void ThrowIfClosed()
    {
        if (_crashed)
        {
            throw Crashes.Error();
        }

        if (FencedInstance)
        {
            throw new KafkaException(new Error(ErrorCode.FencedInstanceId, $"Fatal consumer error: another consumer with group.instance.id '{GroupInstanceId}' joined the group: this one is fenced", true));
        }

        ObjectDisposedException.ThrowIf(_closed, this);
    }

    private static string? Normalize(string? value) => value?.Replace("_", string.Empty, StringComparison.Ordinal).Replace("-", string.Empty, StringComparison.Ordinal).ToLowerInvariant();
}
