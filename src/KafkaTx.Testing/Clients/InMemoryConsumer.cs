using Confluent.Kafka;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// A consumer over an <see cref="InMemoryKafkaCluster"/>. Rebalance callbacks run on the thread that calls Consume,
/// before Consume returns, as in Confluent.Kafka. Read with read_committed (librdkafka's default), it stops at the
/// last stable offset and skips aborted records and markers; its position moves past what it skipped.
/// It sequences its parts under the cluster's lock: the assignment and positions (<see cref="ConsumerAssignment"/>),
/// reading (<see cref="RecordFetcher"/>), the group (<see cref="GroupMembership"/>), the callbacks
/// (<see cref="RebalanceCallbacks"/>, outside the lock) and closing or crashing (<see cref="ConsumerLifetime"/>).
/// </summary>
internal sealed class InMemoryConsumer : IConsumer<byte[]?, byte[]?>, IInMemoryClient
{
    private readonly InMemoryKafkaCluster _cluster;
    private readonly ConsumerSettings _settings;
    private readonly ConsumerAssignment _assignment;
    private readonly RecordFetcher _fetcher;
    private readonly RebalanceCallbacks _callbacks;
    private readonly ConsumerLifetime _lifetime;

    public InMemoryConsumer(InMemoryKafkaCluster cluster, ConsumerConfig config, ConsumerEventHandlers? handlers)
    {
        _cluster = cluster;
        ConsumerSettings.Validate(config);
        _settings = new ConsumerSettings(config);
        _assignment = new ConsumerAssignment(cluster.Topics, cluster.Groups, _settings);
        _fetcher = new RecordFetcher(cluster.Topics, _settings);
        Membership = new GroupMembership(cluster.Groups, cluster.Time, _settings);
        _callbacks = new RebalanceCallbacks(cluster.Sync, handlers, Membership, _assignment);
        _lifetime = new ConsumerLifetime(cluster, _settings, Membership, _callbacks);
    }

    internal GroupMembership Membership { get; }

    public string MemberId => Membership.MemberId;

    public Handle Handle => throw new NotSupportedException("An in-memory consumer has no librdkafka handle.");

    public string Name => $"in-memory-consumer-{_settings.GroupId}";

    public List<string> Subscription
    {
        get
        {
            lock (_cluster.Sync)
            {
                return Membership.Subscription;
            }
        }
    }

    public List<TopicPartition> Assignment
    {
        get
        {
            lock (_cluster.Sync)
            {
                return _assignment.ToList();
            }
        }
    }

    public IConsumerGroupMetadata ConsumerGroupMetadata
    {
        get
        {
            lock (_cluster.Sync)
            {
                return Membership.Metadata(RequireGroupId());
            }
        }
    }

    // ---------------------------------------------------------------- subscription and assignment

    public void Subscribe(IEnumerable<string> topics)
    {
        ArgumentNullException.ThrowIfNull(topics);
        lock (_cluster.Sync)
        {
            _lifetime.ThrowIfClosed(this);
            Membership.Subscribe(RequireGroupId(), topics);
            Monitor.PulseAll(_cluster.Sync);
        }
    }

    public void Subscribe(string topic) => Subscribe([topic]);

    public void Unsubscribe()
    {
        _callbacks.RevokeAllForLeaving();
        lock (_cluster.Sync)
        {
            Membership.Unsubscribe();
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
            _assignment.Add(partitions);
        }
    }

    public void IncrementalAssign(IEnumerable<TopicPartitionOffset> partitions)
    {
        lock (_cluster.Sync)
        {
            _assignment.Add(partitions);
        }
    }

    public void IncrementalAssign(IEnumerable<TopicPartition> partitions) => IncrementalAssign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)));

    public void IncrementalUnassign(IEnumerable<TopicPartition> partitions)
    {
        lock (_cluster.Sync)
        {
            _assignment.Remove([.. partitions]);
        }
    }

    public void Unassign()
    {
        lock (_cluster.Sync)
        {
            _assignment.Clear();
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
            _callbacks.DeliverPending();
            lock (_cluster.Sync)
            {
                _lifetime.ThrowIfClosed(this);
                if (Membership.Refusal is { } refusal)
                {
                    throw new ConsumeException(new ConsumeResult<byte[], byte[]>(), refusal);
                }

                if (!Membership.Inbox.IsEmpty)
                {
                    continue;
                }

                Membership.ExpireDeparted();
                _cluster.Transactions.AbortExpired();
                if (_fetcher.Next(_assignment) is { } record)
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

    // ---------------------------------------------------------------- offsets

    public Offset Position(TopicPartition partition)
    {
        lock (_cluster.Sync)
        {
            return _assignment.PositionOf(partition);
        }
    }

    public void Seek(TopicPartitionOffset tpo)
    {
        ArgumentNullException.ThrowIfNull(tpo);
        lock (_cluster.Sync)
        {
            _assignment.Seek(tpo);
        }
    }

    public List<TopicPartitionOffset> Committed(IEnumerable<TopicPartition> partitions, TimeSpan timeout)
    {
        var groupId = RequireGroupId();
        lock (_cluster.Sync)
        {
            if (_cluster.Groups.IsUnreachable(groupId))
            {
                // librdkafka waits out the timeout for an unreachable coordinator; failing at once keeps tests quick.
                throw new KafkaException(Broker.GroupCoordinator.Unreachable(groupId));
            }
        }

        return [.. partitions.Select(p => new TopicPartitionOffset(p, _cluster.CommittedOffset(groupId, p) is { } offset ? new Offset(offset) : Offset.Unset))];
    }

    public List<TopicPartitionOffset> Committed(TimeSpan timeout) => Committed(Assignment, timeout);

    public void Commit(IEnumerable<TopicPartitionOffset> offsets)
    {
        lock (_cluster.Sync)
        {
            var group = _cluster.Groups.For(RequireGroupId());
            if (_cluster.Groups.IsUnreachable(group.GroupId))
            {
                throw new KafkaException(Broker.GroupCoordinator.Unreachable(group.GroupId));
            }

            foreach (var offset in offsets)
            {
                group.Offsets.Commit(offset.TopicPartition, offset.Offset.Value);
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
            _fetcher.Pause(partitions);
        }
    }

    public void Resume(IEnumerable<TopicPartition> partitions)
    {
        lock (_cluster.Sync)
        {
            _fetcher.Resume(partitions);
        }
    }

    public WatermarkOffsets GetWatermarkOffsets(TopicPartition topicPartition) => QueryWatermarkOffsets(topicPartition, TimeSpan.Zero);

    public WatermarkOffsets QueryWatermarkOffsets(TopicPartition topicPartition, TimeSpan timeout)
    {
        lock (_cluster.Sync)
        {
            return new WatermarkOffsets(0, _cluster.Topics.Log(topicPartition).HighWatermark);
        }
    }

    public List<TopicPartitionOffset> OffsetsForTimes(IEnumerable<TopicPartitionTimestamp> timestampsToSearch, TimeSpan timeout) =>
        throw new NotSupportedException("OffsetsForTimes is not emulated by the in-memory cluster.");

    public int AddBrokers(string brokers) => 0;

    public void SetSaslCredentials(string username, string password)
    {
    }

    // ---------------------------------------------------------------- closing

    public void Close() => _lifetime.Close(this);

    public void Dispose() => _lifetime.Dispose(this);

    void IInMemoryClient.Crash(long timestamp) => _lifetime.Crash(timestamp);

    private string RequireGroupId() =>
        _settings.GroupId ?? throw new KafkaException(new Error(ErrorCode.Local_InvalidArg, "group.id is required for subscribe, committed offsets and group metadata"));
}
