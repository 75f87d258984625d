using Confluent.Kafka;
using KafkaTx.Testing.Broker;
using KafkaTx.Testing.Clients;

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
    /// <summary>Creates an empty cluster.</summary>
    /// <param name="defaultPartitions">Partitions of a topic created automatically on first use (Kafka's num.partitions). Default 1.</param>
    /// <param name="timeProvider">The clock for transaction timeouts; the system clock by default.</param>
    public InMemoryKafkaCluster(int defaultPartitions = 1, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(defaultPartitions, 1);
        DefaultPartitions = defaultPartitions;
        Time = timeProvider ?? TimeProvider.System;
        Topics = new Topics(defaultPartitions);
        Groups = new GroupCoordinator(Topics, Time);
        Transactions = new TransactionCoordinator(Sync, Time, Groups);
        Clients = new ClientRegistry(Sync, Time);
    }

    /// <summary>The bootstrap servers value that names this cluster (any value works: clients are created by the cluster).</summary>
    public string BootstrapServers { get; } = Address;

    /// <summary>The address every in-memory cluster goes by; a builder running in memory gets it as its BootstrapServers when none is set.</summary>
    internal const string Address = "in-memory";

    /// <summary>Partitions of a topic created automatically on first use.</summary>
    public int DefaultPartitions { get; }

    // The cluster is the broker's parts (Broker/: topics and their logs, the transaction coordinator, the group
    // coordinator) and the clients it handed out (Clients/), all behind one lock. This class is their public face.

    /// <summary>The one lock that guards the whole cluster; a consumer waiting for records waits on it, and is woken by a pulse.</summary>
    internal object Sync { get; } = new();

    internal TimeProvider Time { get; }

    internal Topics Topics { get; }

    internal TransactionCoordinator Transactions { get; }

    internal GroupCoordinator Groups { get; }

    internal ClientRegistry Clients { get; }

    // ---------------------------------------------------------------- clients

    /// <summary>Creates a producer (transactional when the configuration sets transactional.id).</summary>
    /// <param name="config">The producer configuration; bootstrap.servers is ignored.</param>
    /// <returns>A producer of raw bytes over this cluster.</returns>
    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config) => Clients.Open(new InMemoryProducer(this, config));

    /// <summary>Creates a consumer, with optional rebalance callbacks (run on the thread that calls Consume).</summary>
    /// <param name="config">The consumer configuration; bootstrap.servers is ignored.</param>
    /// <param name="handlers">Rebalance, error and log callbacks, or null.</param>
    /// <returns>A consumer of raw bytes over this cluster.</returns>
    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers? handlers = null) => Clients.Open(new InMemoryConsumer(this, config, handlers));

    /// <summary>
    /// Simulates the death of the process that holds every client open now (SIGKILL, a power cut): the clients send
    /// nothing more (each further call fails with a fatal <see cref="ErrorCode.Local_Fatal"/>), and closing them does
    /// nothing, so no transaction is aborted and no consumer leaves its group. Their open transactions stay open until
    /// a new producer with the same transactional.id initializes, or the transaction timeout passes; their consumers
    /// keep their partitions until the session timeout (session.timeout.ms) passes, or, for a static member, until a
    /// consumer with the same group.instance.id joins.
    /// </summary>
    public void CrashClients() => Clients.CrashAll();

    // ---------------------------------------------------------------- topics

    /// <summary>Creates a topic. Creating an existing topic with the same partition count does nothing.</summary>
    /// <param name="topic">The topic name.</param>
    /// <param name="partitions">Its number of partitions.</param>
    /// <exception cref="InvalidOperationException">The topic exists with another partition count (the message names both).</exception>
    public void CreateTopic(string topic, int partitions)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        lock (Sync)
        {
            Topics.Create(topic, partitions);
        }
    }

    /// <summary>The number of partitions of a topic, creating it with the default count if it does not exist.</summary>
    /// <param name="topic">The topic.</param>
    /// <returns>The partition count.</returns>
    public int PartitionCount(string topic)
    {
        lock (Sync)
        {
            return Topics.Partitions(topic).Length;
        }
    }

    /// <summary>The end of a partition's log (the offset the next record gets), markers included.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns>The high watermark.</returns>
    public long HighWatermark(TopicPartition partition)
    {
        lock (Sync)
        {
            return Topics.Log(partition).HighWatermark;
        }
    }

    /// <summary>The last stable offset: the first offset of the oldest open transaction, or the high watermark.</summary>
    /// <param name="partition">The partition.</param>
    /// <returns>The offset below which read_committed readers may read.</returns>
    public long LastStableOffset(TopicPartition partition)
    {
        lock (Sync)
        {
            Transactions.AbortExpired();
            return Topics.Log(partition).LastStableOffset;
        }
    }

    /// <summary>
    /// Every record a consumer with the isolation level would see in a partition, in offset order. Reading does not
    /// create the topic: a topic that does not exist reads as empty.
    /// </summary>
    /// <param name="partition">The partition.</param>
    /// <param name="isolation">The isolation level.</param>
    /// <returns>The visible records; none when the topic does not exist.</returns>
    /// <exception cref="KafkaException">The topic exists without this partition (<see cref="ErrorCode.Local_UnknownPartition"/>).</exception>
    public IReadOnlyList<InMemoryRecord> ReadPartition(TopicPartition partition, IsolationLevel isolation = IsolationLevel.ReadCommitted)
    {
        ArgumentNullException.ThrowIfNull(partition);
        lock (Sync)
        {
            if (Topics.Find(partition.Topic) is null)
            {
                return [];
            }

            Transactions.AbortExpired();
            return Topics.Log(partition).Read(partition, isolation);
        }
    }

    /// <summary>
    /// Every visible record of all partitions of a topic, partition by partition. Reading does not create the topic
    /// (so a test may read before the application creates it with its own partition count): a topic that does not
    /// exist reads as empty. Mind the topic's name: a misspelt one reads as empty too.
    /// </summary>
    /// <param name="topic">The topic.</param>
    /// <param name="isolation">The isolation level.</param>
    /// <returns>The visible records, partition by partition; none when the topic does not exist.</returns>
    public IReadOnlyList<InMemoryRecord> ReadTopic(string topic, IsolationLevel isolation = IsolationLevel.ReadCommitted)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        lock (Sync)
        {
            if (Topics.Find(topic) is not { } partitions)
            {
                return [];
            }

            Transactions.AbortExpired();
            return [.. partitions.SelectMany((log, p) => log.Read(new TopicPartition(topic, p), isolation))];
        }
    }

    /// <summary>The offset a consumer group has committed for a partition, or null.</summary>
    /// <param name="groupId">The group.</param>
    /// <param name="partition">The partition.</param>
    /// <returns>The committed offset.</returns>
    public long? CommittedOffset(string groupId, TopicPartition partition)
    {
        lock (Sync)
        {
            return Groups.CommittedOffset(groupId, partition);
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
            Transactions.Fence(transactionalId);
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
            Transactions.For(transactionalId).Faults.FailNextCommit(error);
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
            Transactions.For(transactionalId).Faults.FailNextAbort(error);
        }
    }

    /// <summary>Delays the next commit of a transactional.id; a call whose timeout is shorter fails as timed out, and a later call completes it.</summary>
    /// <param name="transactionalId">The transactional.id.</param>
    /// <param name="delay">How long the commit takes.</param>
    public void DelayNextCommit(string transactionalId, TimeSpan delay)
    {
        lock (Sync)
        {
            Transactions.For(transactionalId).Faults.DelayNextCommit(delay);
        }
    }

    /// <summary>
    /// Makes a consumer group's coordinator unreachable, or reachable again. While it is unreachable the group's
    /// consumers keep their partitions and keep fetching, but their offset commits (Commit) and transactional offset
    /// commits (SendOffsetsToTransaction) fail with <see cref="ErrorCode.GroupCoordinatorNotAvailable"/>
    /// (COORDINATOR_NOT_AVAILABLE), SendOffsetsToTransaction's as a retriable error that leaves the transaction open,
    /// as librdkafka reports it once its own retries ran out. Reading the committed offsets (Committed) fails the
    /// same way, at once (librdkafka would wait out its timeout first). The cluster's own
    /// <see cref="CommittedOffset(string, TopicPartition)"/> still answers, for tests to check.
    /// </summary>
    /// <param name="groupId">The group.</param>
    /// <param name="unavailable">True to make the coordinator unreachable, false to bring it back.</param>
    public void SetGroupCoordinatorUnavailable(string groupId, bool unavailable)
    {
        ArgumentException.ThrowIfNullOrEmpty(groupId);
        lock (Sync)
        {
            Groups.SetUnreachable(groupId, unavailable);
            Monitor.PulseAll(Sync);
        }
    }

    /// <summary>Makes every member of a consumer group give up all its partitions and receive them anew, as an eager rebalance does.</summary>
    /// <param name="groupId">The group.</param>
    public void ForceRebalance(string groupId)
    {
        lock (Sync)
        {
            Groups.Find(groupId)?.Rebalance(full: true);
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
            member.Membership.Expire();
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
            Topics.Log(partition).DeleteBefore(offset);
        }
    }

    /// <summary>For tests of the cluster itself: a group's members, and the partitions its departed members still hold.</summary>
    internal (int Members, int HeldByDeparted) GroupSnapshot(string groupId)
    {
        lock (Sync)
        {
            return Groups.Find(groupId) is { } group ? (group.MemberCount, group.PartitionsHeldByDepartedMembers) : (0, 0);
        }
    }

    /// <summary>For tests of the cluster and the processor: the longest a transaction stayed open, and how many the coordinator aborted for outliving their timeout.</summary>
    internal (TimeSpan Longest, int TimedOut) TransactionSpans()
    {
        lock (Sync)
        {
            Transactions.AbortExpired();
            return (Transactions.LongestTransaction, Transactions.TimedOut);
        }
    }
}
