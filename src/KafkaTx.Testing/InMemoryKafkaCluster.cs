using Confluent.Kafka;

namespace KafkaTx.Testing;

/// <summary>
/// An in-memory Kafka with Kafka's transactional semantics, for tests: topics and partitions, producer ids and
/// epochs (InitTransactions fences the previous producer of a transactional.id and aborts its open transaction),
/// commit and abort markers that occupy offsets, the last stable offset, offsets sent to a transaction that take
/// effect only when it commits, the coordinator aborting transactions older than transaction.timeout.ms, consumer
/// groups with rebalances, and fault injection. Create clients with <see cref="CreateProducer"/> and
/// <see cref="CreateConsumer"/>, or plug it into KafkaTx with <c>UseInMemoryKafka</c>.
/// </summary>
/// <remarks>
/// Where it differs from Kafka, Kafka is right: the conformance suite runs the same scenarios against both.
/// Thread-safe: one lock guards the whole cluster, which keeps the model simple and is fast enough for tests.
/// Records are stored by reference: do not change a key or value array after producing it.
/// </remarks>
public sealed class InMemoryKafkaCluster
{
    internal readonly object Sync = new();
    private readonly Dictionary<string, PartitionLog[]> _topics = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TransactionalIdState> _transactionalIds = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ConsumerGroup> _groups = new(StringComparer.Ordinal);
    private readonly List<TransactionRecord> _openTransactions = [];
    private readonly HashSet<IInMemoryClient> _openClients = [];
    private long _nextProducerId = 1000;

    /// <summary>Creates an empty cluster.</summary>
    /// <param name="defaultPartitions">Partitions of a topic created automatically on first use (Kafka's num.partitions). Default 1.</param>
    /// <param name="timeProvider">The clock for transaction timeouts; the system clock by default.</param>
    public InMemoryKafkaCluster(int defaultPartitions = 1, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(defaultPartitions, 1);
        DefaultPartitions = defaultPartitions;
        Time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The bootstrap servers value that names this cluster (any value works: clients are created by the cluster).</summary>
    public string BootstrapServers { get; } = "in-memory";

    /// <summary>Partitions of a topic created automatically on first use.</summary>
    public int DefaultPartitions { get; }

    internal TimeProvider Time { get; }

    // ---------------------------------------------------------------- clients

    /// <summary>Creates a producer (transactional when the configuration sets transactional.id).</summary>
    /// <param name="config">The producer configuration; bootstrap.servers is ignored.</param>
    /// <returns>A producer of raw bytes over this cluster.</returns>
    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config) => Track(new InMemoryProducer(this, config));

    /// <summary>Creates a consumer, with optional rebalance callbacks (run on the thread that calls Consume).</summary>
    /// <param name="config">The consumer configuration; bootstrap.servers is ignored.</param>
    /// <param name="handlers">Rebalance, error and log callbacks, or null.</param>
    /// <returns>A consumer of raw bytes over this cluster.</returns>
    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers? handlers = null) => Track(new InMemoryConsumer(this, config, handlers));

    /// <summary>
    /// Simulates the death of the process that holds every client open now (SIGKILL, a power cut): the clients send
    /// nothing more (each further call fails with a fatal <see cref="ErrorCode.Local_Fatal"/>), and closing them does
    /// nothing, so no transaction is aborted and no consumer leaves its group. Their open transactions stay open until
    /// a new producer with the same transactional.id initializes, or the transaction timeout passes; their consumers
    /// keep their partitions until the session timeout (session.timeout.ms) passes, or, for a static member, until a
    /// consumer with the same group.instance.id joins.
    /// </summary>
    public void CrashClients()
    {
        lock (Sync)
        {
            foreach (var client in _openClients)
            {
                client.Crash(Time.GetTimestamp());
            }

            _openClients.Clear();
            CrashCount++;
            Monitor.PulseAll(Sync);
        }
    }

    /// <summary>How many times <see cref="CrashClients"/> was called: a process that was running then is dead.</summary>
    internal int CrashCount { get; private set; }

    /// <summary>
    /// A client made by a process that died in an earlier crash (its code still runs in the test, a real one's would
    /// not): it is dead from birth, so that a crashed application cannot come back as a zombie, for instance by
    /// replacing its producer and fencing the instance that took its place.
    /// </summary>
    internal T CreateClient<T>(Func<T> create, int crashCountAtProcessStart)
        where T : IInMemoryClient
    {
        var client = Track(create());
        lock (Sync)
        {
            if (CrashCount != crashCountAtProcessStart)
            {
                client.Crash(Time.GetTimestamp());
                _openClients.Remove(client);
            }
        }

        return client;
    }

    // ---------------------------------------------------------------- topics

    /// <summary>Creates a topic. Creating an existing topic with the same partition count does nothing.</summary>
    /// <param name="topic">The topic name.</param>
    /// <param name="partitions">Its number of partitions.</param>
    public void CreateTopic(string topic, int partitions)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        lock (Sync)
        {
            if (_topics.TryGetValue(topic, out var existing))
            {
                if (existing.Length != partitions)
                {
                    throw new InvalidOperationException($"Topic '{topic}' already exists with {existing.Length} partitions.");
                }

                return;
            }

            _topics[topic] = [.. Enumerable.Range(0, partitions).Select(p => new PartitionLog(new TopicPartition(topic, p)))];
        }
    }

    /// <summary>The number of partitions of a topic, creating it with the default count if it does not exist.</summary>
    /// <param name="topic">The topic.</param>
    /// <returns>The partition count.</returns>
    public int PartitionCount(string topic)
    {
        lock (Sync)
        {
            return Topic(topic).Length;
        }
    }

    /// <summary>The end of a partition's log (the offset the next record gets), markers included.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns>The high watermark.</returns>
    public long HighWatermark(TopicPartition partition)
    {
        lock (Sync)
        {
            return Log(partition).HighWatermark;
        }
    }

    /// <summary>The last stable offset: the first offset of the oldest open transaction, or the high watermark.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns>The offset below which read_committed readers may read.</returns>
    public long LastStableOffset(TopicPartition partition)
    {
        lock (Sync)
        {
            ExpireTransactions();
            return Log(partition).LastStableOffset;
        }
    }

    /// <summary>Every record a consumer with the isolation level would see in a partition, in offset order.</summary>
    /// <param name="partition">The partition.</param>
    /// <param name="isolation">The isolation level.</param>
    /// <returns>The visible records.</returns>
    public IReadOnlyList<InMemoryRecord> ReadPartition(TopicPartition partition, IsolationLevel isolation = IsolationLevel.ReadCommitted)
    {
        lock (Sync)
        {
            ExpireTransactions();
            var log = Log(partition);
            var records = new List<InMemoryRecord>();
            var end = log.End(isolation);
            for (var offset = log.LogStartOffset; offset < end; offset++)
            {
                if (log.IsVisible(offset, isolation))
                {
                    records.Add(log.Entry(offset).ToRecord(partition, offset));
                }
            }

            return records;
        }
    }

    /// <summary>Every visible record of all partitions of a topic.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="isolation">The isolation level.</param>
    /// <returns>The visible records, partition by partition.</returns>
    public IReadOnlyList<InMemoryRecord> ReadTopic(string topic, IsolationLevel isolation = IsolationLevel.ReadCommitted) =>
        [.. Enumerable.Range(0, PartitionCount(topic)).SelectMany(p => ReadPartition(new TopicPartition(topic, p), isolation))];

    /// <summary>The offset a consumer group has committed for a partition, or null.</summary>
    /// <param name="groupId">The group.</param>
    /// <param name="partition">The partition.</param>
    /// <returns>The committed offset.</returns>
    public long? CommittedOffset(string groupId, TopicPartition partition)
    {
        lock (Sync)
        {
            return _groups.TryGetValue(groupId, out var group) && group.Offsets.TryGetValue(partition, out var offset) ? offset : null;
        }
    }

    // ---------------------------------------------------------------- fault injection

    /// <summary>
    /// Fences the current producer of a transactional.id, as a new instance's InitTransactions would: the epoch is
    /// bumped, its open transaction aborted, and its next transactional call fails as fenced.
    /// </summary>
    /// <param name="transactionalId">The transactional.id.</param>
    public void FenceProducer(string transactionalId)
    {
        lock (Sync)
        {
            var state = TransactionalIdFor(transactionalId);
            AbortOpen(state);
            state.Epoch++;
        }
    }

    /// <summary>
    /// Makes the next commit of a transactional.id fail with an error, in the shape Confluent.Kafka gives it:
    /// fencing codes fence the producer; fatal codes (InvalidTxnState, TransactionalIdAuthorizationFailed) make it
    /// fatal; coordinator-retriable codes are absorbed as librdkafka absorbs them; Local_TimedOut is retriable (the
    /// next call completes the commit); anything else requires an abort.
    /// </summary>
    /// <param name="transactionalId">The transactional.id.</param>
    /// <param name="error">The error code.</param>
    public void FailNextCommit(string transactionalId, ErrorCode error)
    {
        lock (Sync)
        {
            TransactionalIdFor(transactionalId).CommitFailures.Enqueue(error);
        }
    }

    /// <summary>
    /// Makes the next abort of a transactional.id fail with an error, as librdkafka's abort sometimes does
    /// (confluentinc/librdkafka#4849: a fatal INVALID_TXN_STATE right after producing). The producer turns fatal and
    /// the transaction stays open, until a new producer with the same transactional.id initializes and aborts it.
    /// </summary>
    /// <param name="transactionalId">The transactional.id.</param>
    /// <param name="error">The error code; it is raised as a fatal error.</param>
    public void FailNextAbort(string transactionalId, ErrorCode error)
    {
        lock (Sync)
        {
            TransactionalIdFor(transactionalId).AbortFailures.Enqueue(error);
        }
    }

    /// <summary>Delays the next commit of a transactional.id; a call whose timeout is shorter fails as timed out, and a later call completes it.</summary>
    /// <param name="transactionalId">The transactional.id.</param>
    /// <param name="delay">How long the commit takes.</param>
    public void DelayNextCommit(string transactionalId, TimeSpan delay)
    {
        lock (Sync)
        {
            TransactionalIdFor(transactionalId).CommitDelay = delay;
        }
    }

    /// <summary>Makes every member of a consumer group give up all its partitions and receive them anew, as an eager rebalance does.</summary>
    /// <param name="groupId">The group.</param>
    public void ForceRebalance(string groupId)
    {
        lock (Sync)
        {
            if (_groups.TryGetValue(groupId, out var group))
            {
                group.Rebalance(this, full: true);
            }

            Monitor.PulseAll(Sync);
        }
    }

    /// <summary>Throws a consumer out of its group: its partitions are lost (it is told at its next Consume) and reassigned at once.</summary>
    /// <param name="consumer">A consumer created by this cluster.</param>
    public void ExpireMember(IConsumer<byte[]?, byte[]?> consumer)
    {
        ArgumentNullException.ThrowIfNull(consumer);
        if (consumer is not InMemoryConsumer member)
        {
            throw new ArgumentException("The consumer was not created by an in-memory cluster.", nameof(consumer));
        }

        lock (Sync)
        {
            member.Group?.Expire(this, member);
            Monitor.PulseAll(Sync);
        }
    }

    /// <summary>
    /// Deletes a partition's records before an offset, as Kafka's DeleteRecords (AdminClient.DeleteRecordsAsync) or
    /// retention does, so that a long test keeps its memory flat. Never deletes past the last stable offset. A
    /// consumer whose position lies below the new log start goes on from it.
    /// </summary>
    /// <param name="partition">The partition.</param>
    /// <param name="offset">The new log start offset.</param>
    public void DeleteRecordsBefore(TopicPartition partition, long offset)
    {
        ArgumentNullException.ThrowIfNull(partition);
        lock (Sync)
        {
            Log(partition).DeleteBefore(offset);
        }
    }

    /// <summary>For tests of the cluster itself: a group's members, and the partitions its departed members still hold.</summary>
    internal (int Members, int HeldByDeparted) GroupSnapshot(string groupId)
    {
        lock (Sync)
        {
            return _groups.TryGetValue(groupId, out var group) ? (group.MemberCount, group.PartitionsHeldByDepartedMembers) : (0, 0);
        }
    }

    // ---------------------------------------------------------------- internals used by the clients (under Sync)

    internal void Closed(IInMemoryClient client)
    {
        lock (Sync)
        {
            _openClients.Remove(client);
        }
    }

    private T Track<T>(T client)
        where T : IInMemoryClient
    {
        lock (Sync)
        {
            _openClients.Add(client);
        }

        return client;
    }

    internal PartitionLog[] Topic(string topic)
    {
        if (!_topics.TryGetValue(topic, out var partitions))
        {
            _topics[topic] = partitions = [.. Enumerable.Range(0, DefaultPartitions).Select(p => new PartitionLog(new TopicPartition(topic, p)))];
        }

        return partitions;
    }

    internal PartitionLog Log(TopicPartition partition)
    {
        var partitions = Topic(partition.Topic);
        if (partition.Partition.Value < 0 || partition.Partition.Value >= partitions.Length)
        {
            throw new KafkaException(new Error(ErrorCode.Local_UnknownPartition, $"Local: Unknown partition {partition}"));
        }

        return partitions[partition.Partition.Value];
    }

    internal TransactionalIdState TransactionalIdFor(string transactionalId)
    {
        if (!_transactionalIds.TryGetValue(transactionalId, out var state))
        {
            _transactionalIds[transactionalId] = state = new TransactionalIdState(transactionalId, _nextProducerId++);
        }

        return state;
    }

    internal ConsumerGroup GroupFor(string groupId)
    {
        if (!_groups.TryGetValue(groupId, out var group))
        {
            _groups[groupId] = group = new ConsumerGroup(groupId);
        }

        return group;
    }

    /// <summary>InitTransactions: bump the epoch, abort what the previous epoch left open.</summary>
    internal (long ProducerId, int Epoch) InitTransactions(string transactionalId, TimeSpan transactionTimeout)
    {
        var state = TransactionalIdFor(transactionalId);
        AbortOpen(state);
        state.Epoch++;
        state.TransactionTimeout = transactionTimeout;
        return (state.ProducerId, state.Epoch);
    }

    internal TransactionRecord Begin(TransactionalIdState state)
    {
        var transaction = new TransactionRecord(state, Time.GetTimestamp());
        state.Open = transaction;
        _openTransactions.Add(transaction);
        return transaction;
    }

    internal void Complete(TransactionRecord transaction, bool commit)
    {
        if (transaction.Status != TransactionStatus.Open)
        {
            return;
        }

        transaction.Status = commit ? TransactionStatus.Committed : TransactionStatus.Aborted;
        foreach (var log in transaction.Partitions.Keys)
        {
            log.CloseTransaction(transaction, commit);
        }

        if (commit)
        {
            foreach (var (groupId, offsets) in transaction.Offsets)
            {
                var group = GroupFor(groupId);
                foreach (var (partition, offset) in offsets)
                {
                    group.Offsets[partition] = offset;
                }
            }
        }

        _openTransactions.Remove(transaction);
        if (transaction.Owner.Open == transaction)
        {
            transaction.Owner.Open = null;
        }

        Monitor.PulseAll(Sync);
    }

    /// <summary>The coordinator's timeout: open transactions older than their transaction.timeout.ms are aborted, and the epoch bumped.</summary>
    internal void ExpireTransactions()
    {
        if (_openTransactions.Count == 0)
        {
            return;
        }

        // Backwards, because Complete removes the transaction from the list; no copy on this per-Consume path.
        for (var i = _openTransactions.Count - 1; i >= 0; i--)
        {
            var transaction = _openTransactions[i];
            if (Time.GetElapsedTime(transaction.StartedAt) > transaction.Owner.TransactionTimeout)
            {
                Complete(transaction, commit: false);
                transaction.Owner.Epoch++; // as Kafka's coordinator does: the late producer is fenced
            }
        }
    }

    private void AbortOpen(TransactionalIdState state)
    {
        if (state.Open is { } open)
        {
            Complete(open, commit: false);
        }
    }
}
