using Confluent.Kafka;

namespace KafkaTx.Tests.Fakes;

/// <summary>
/// A consumer over a <see cref="FakeBroker"/>. Rebalances are queued by the test and delivered inside the next
/// Consume call, on the consuming thread, as Confluent.Kafka delivers them.
/// </summary>
internal sealed class FakeConsumer(FakeBroker broker, ConsumerEventHandlers handlers) : IConsumer<byte[]?, byte[]?>
{
    private readonly Lock _lock = new();
    private readonly Queue<(string Kind, List<TopicPartition> Partitions)> _rebalances = new();
    private readonly List<TopicPartition> _assignment = [];
    private readonly Dictionary<TopicPartition, long> _positions = [];
    private readonly HashSet<TopicPartition> _paused = [];
    private int _next;

    public IReadOnlyList<string> Subscribed { get; private set; } = [];

    public bool IsClosed { get; private set; }

    public int GroupMetadataReads { get; private set; }

    public List<TopicPartition> Assignment
    {
        get
        {
            lock (_lock)
            {
                return [.. _assignment];
            }
        }
    }

    public List<string> Subscription => [.. Subscribed];

    public string MemberId => "fake-member";

    public IConsumerGroupMetadata ConsumerGroupMetadata
    {
        get
        {
            GroupMetadataReads++;
            return new FakeGroupMetadata();
        }
    }

    public Handle Handle => throw new NotSupportedException();

    public string Name => "fake-consumer";

    public void Rebalance(string kind, params TopicPartition[] partitions)
    {
        lock (_lock)
        {
            _rebalances.Enqueue((kind, [.. partitions]));
        }

        broker.Signal();
    }

    public void Subscribe(IEnumerable<string> topics) => Subscribed = [.. topics];

    public void Subscribe(string topic) => Subscribe([topic]);

    /// <summary>The managed thread ids Consume was called on, and whether any of them was a thread-pool thread.</summary>
    public System.Collections.Concurrent.ConcurrentDictionary<int, bool> ConsumeThreads { get; } = new();

    /// <summary>Thrown by the next Consume calls, one each (a fatal ConsumeException, say), before anything else happens.</summary>
    public Queue<Exception> ConsumeFailures { get; } = new();

    public ConsumeResult<byte[]?, byte[]?>? Consume(TimeSpan timeout)
    {
        ConsumeThreads.TryAdd(Environment.CurrentManagedThreadId, Thread.CurrentThread.IsThreadPoolThread);
        if (ConsumeFailures.TryDequeue(out var failure))
        {
            throw failure;
        }

        DeliverRebalances();
        var found = NextRecord();
        if (found is null && timeout > TimeSpan.Zero)
        {
            broker.WaitForChange(timeout);
            DeliverRebalances();
            found = NextRecord();
        }

        return found;
    }

    public ConsumeResult<byte[]?, byte[]?>? Consume(int millisecondsTimeout) => Consume(TimeSpan.FromMilliseconds(millisecondsTimeout));

    public ConsumeResult<byte[]?, byte[]?> Consume(CancellationToken cancellationToken = default) => throw new NotSupportedException();

    public Offset Position(TopicPartition partition)
    {
        lock (_lock)
        {
            return _positions.TryGetValue(partition, out var position) ? position : Offset.Unset;
        }
    }

    public void Seek(TopicPartitionOffset tpo)
    {
        lock (_lock)
        {
            _positions[tpo.TopicPartition] = tpo.Offset == Offset.Beginning ? 0 : tpo.Offset.Value;
        }

        broker.Record($"seek:{tpo.Partition.Value}@{tpo.Offset.Value}");
    }

    /// <summary>The partitions of each Committed call: each is a round trip to the group coordinator.</summary>
    public List<List<TopicPartition>> CommittedQueries { get; } = [];

    /// <summary>When set, every committed-offsets query fails (the group coordinator is unreachable).</summary>
    public bool FailCommittedQueries { get; set; }

    public List<TopicPartitionOffset> Committed(IEnumerable<TopicPartition> partitions, TimeSpan timeout)
    {
        var asked = partitions.ToList();
        lock (_lock)
        {
            CommittedQueries.Add(asked);
        }

        broker.Record("committed-query");
        if (FailCommittedQueries)
        {
            throw new KafkaException(ErrorCode.Local_TimedOut);
        }

        return [.. asked.Select(tp => new TopicPartitionOffset(tp, broker.GroupOffset(tp) is { } offset ? new Offset(offset) : Offset.Unset))];
    }

    public List<TopicPartitionOffset> Committed(TimeSpan timeout) => Committed(Assignment, timeout);

    public void Close()
    {
        var revoked = Assignment;
        if (revoked.Count > 0)
        {
            broker.Record("revoke-begin");
            handlers.PartitionsRevoked([.. revoked.Select(tp => new TopicPartitionOffset(tp, Position(tp)))]);
            broker.Record("revoke-end");
        }

        lock (_lock)
        {
            _assignment.Clear();
        }

        IsClosed = true;
        broker.Record("closed");
    }

    public void Dispose()
    {
    }

    private void DeliverRebalances()
    {
        while (true)
        {
            (string Kind, List<TopicPartition> Partitions) next;
            lock (_lock)
            {
                if (!_rebalances.TryDequeue(out next))
                {
                    return;
                }
            }

            switch (next.Kind)
            {
                case "assign":
                    lock (_lock)
                    {
                        foreach (var tp in next.Partitions)
                        {
                            _assignment.Add(tp);
                            _positions[tp] = broker.GroupOffset(tp) ?? 0;
                        }
                    }

                    handlers.PartitionsAssigned(next.Partitions);
                    break;
                case "revoke":
                    broker.Record("revoke-begin");
                    handlers.PartitionsRevoked([.. next.Partitions.Select(tp => new TopicPartitionOffset(tp, Position(tp)))]);
                    broker.Record("revoke-end");
                    Unassign(next.Partitions);
                    break;
                default:
                    broker.Record("lost");
                    handlers.PartitionsLost([.. next.Partitions.Select(tp => new TopicPartitionOffset(tp, Position(tp)))]);
                    Unassign(next.Partitions);
                    break;
            }
        }
    }

    private void Unassign(List<TopicPartition> partitions)
    {
        lock (_lock)
        {
            _assignment.RemoveAll(partitions.Contains);
            foreach (var tp in partitions)
            {
                _positions.Remove(tp);
                if (!PauseSurvivesUnassign)
                {
                    _paused.Remove(tp);
                }
            }
        }
    }

    private ConsumeResult<byte[]?, byte[]?>? NextRecord()
    {
        lock (_lock)
        {
            for (var i = 0; i < _assignment.Count; i++)
            {
                var tp = _assignment[(_next + i) % _assignment.Count];
                if (_paused.Contains(tp))
                {
                    continue;
                }

                var record = broker.RecordAtOrAfter(tp, _positions[tp]);
                if (record is null)
                {
                    continue;
                }

                _next = (_next + i + 1) % _assignment.Count;
                _positions[tp] = record.NextPosition;
                return new ConsumeResult<byte[]?, byte[]?>
                {
                    TopicPartitionOffset = new TopicPartitionOffset(tp, record.Offset),
                    Message = new Message<byte[]?, byte[]?> { Key = record.Key, Value = record.Value, Headers = record.Headers },
                };
            }

            return null;
        }
    }

    // Members the processor does not use.
    public void Unsubscribe() => Subscribed = [];

    public void Assign(TopicPartition partition) => throw new NotSupportedException();

    public void Assign(TopicPartitionOffset partition) => throw new NotSupportedException();

    public void Assign(IEnumerable<TopicPartitionOffset> partitions) => throw new NotSupportedException();

    public void Assign(IEnumerable<TopicPartition> partitions) => throw new NotSupportedException();

    public void IncrementalAssign(IEnumerable<TopicPartitionOffset> partitions) => throw new NotSupportedException();

    public void IncrementalAssign(IEnumerable<TopicPartition> partitions) => throw new NotSupportedException();

    public void IncrementalUnassign(IEnumerable<TopicPartition> partitions) => throw new NotSupportedException();

    public void Unassign() => throw new NotSupportedException();

    public void StoreOffset(ConsumeResult<byte[]?, byte[]?> result) => throw new NotSupportedException("a processor never stores offsets");

    public void StoreOffset(TopicPartitionOffset offset) => throw new NotSupportedException("a processor never stores offsets");

    public List<TopicPartitionOffset> Commit() => throw new NotSupportedException("a processor never commits outside a transaction");

    public void Commit(IEnumerable<TopicPartitionOffset> offsets) => throw new NotSupportedException("a processor never commits outside a transaction");

    public void Commit(ConsumeResult<byte[]?, byte[]?> result) => throw new NotSupportedException("a processor never commits outside a transaction");

    /// <summary>
    /// Whether a partition unassigned while paused comes back paused when assigned again, as librdkafka may do (its
    /// pause is a flag of the partition's object, which outlives the assignment); by default it comes back unpaused.
    /// </summary>
    public bool PauseSurvivesUnassign { get; set; }

    /// <summary>How many times Pause was called with at least one partition.</summary>
    public int Pauses { get; private set; }

    public void Pause(IEnumerable<TopicPartition> partitions)
    {
        lock (_lock)
        {
            var list = partitions.ToList();
            _paused.UnionWith(list);
            Pauses += list.Count > 0 ? 1 : 0;
        }
    }

    public void Resume(IEnumerable<TopicPartition> partitions)
    {
        lock (_lock)
        {
            _paused.ExceptWith(partitions);
        }
    }

    public List<TopicPartitionOffset> OffsetsForTimes(IEnumerable<TopicPartitionTimestamp> timestampsToSearch, TimeSpan timeout) => throw new NotSupportedException();

    public WatermarkOffsets GetWatermarkOffsets(TopicPartition topicPartition) => new(0, broker.HighWatermark(topicPartition));

    public WatermarkOffsets QueryWatermarkOffsets(TopicPartition topicPartition, TimeSpan timeout) => throw new NotSupportedException();

    public int AddBrokers(string brokers) => 0;

    public void SetSaslCredentials(string username, string password)
    {
    }
}
