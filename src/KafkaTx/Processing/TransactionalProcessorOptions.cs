using KafkaTx.Serialization;
using Confluent.Kafka;

namespace KafkaTx;

/// <summary>Settings of a consume-transform-produce processor. Validated when the host starts.</summary>
public sealed class TransactionalProcessorOptions
{
    private PartitionAssignmentStrategy _assignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky;

    /// <summary>The topics to consume. Required.</summary>
    public IList<string> Topics { get; set; } = [];

    /// <summary>The consumer group. Instances with the same group share the partitions; Kafka's group protocol is the distribution engine. Required.</summary>
    public string? GroupId { get; set; }

    /// <summary>
    /// The most records one transaction covers. Default 2,000: about where a commit (11 to 14 ms measured) costs as
    /// much as producing the batch (4 to 5 us per 1 KB record), so that a busy processor spends no more than half its
    /// time committing, while an abort redoes at most a few milliseconds of work. Below that input rate
    /// <see cref="MaxBatchDuration"/> ends transactions first. See docs/performance.md.
    /// </summary>
    public int MaxBatchSize { get; set; } = 2_000;

    /// <summary>
    /// The longest a transaction stays open collecting records before it commits. Default 100 ms, as Kafka Streams'
    /// exactly-once mode. Longer means more throughput, and more latency for read_committed readers, who see
    /// nothing of a transaction until it commits. Must be below the producer's TransactionTimeout.
    /// </summary>
    public TimeSpan MaxBatchDuration { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// How many records are handled at once. Default 1: one record at a time, in the order of each partition. Above 1,
    /// records are dispatched to concurrent handler calls as <see cref="Order"/> allows, and a transaction commits only
    /// once every handler call of its batch has completed (the commit barrier), so exactly once holds as with 1. From 1
    /// to 1,000. See docs/parallel-processing.md.
    /// </summary>
    public int MaxConcurrency { get; set; } = 1;

    /// <summary>
    /// What order concurrent handling keeps when <see cref="MaxConcurrency"/> is above 1. Default
    /// <see cref="ProcessingOrder.Key"/>: records with the same key are handled one after another, in offset order;
    /// records with different keys concurrently.
    /// </summary>
    public ProcessingOrder Order { get; set; } = ProcessingOrder.Key;

    /// <summary>
    /// The most records consumed ahead of the handlers (waiting for their key's or partition's turn, or for a free
    /// handler) when <see cref="MaxConcurrency"/> is above 1: consumption pauses at this bound, so memory stays flat
    /// whatever the lag. Default 1,000; at least <see cref="MaxConcurrency"/>.
    /// </summary>
    public int MaxBufferedRecords { get; set; } = 1_000;

    /// <summary>
    /// Per record: how many times it is handled before it is poison (MaxAttempts), and the backoff between attempts.
    /// Default 3 attempts, 100 ms doubling to 5 s, with jitter.
    /// </summary>
    public TransactionRetryOptions Retry { get; set; } = new();

    /// <summary>What happens to a record that failed <see cref="TransactionRetryOptions.MaxAttempts"/> times. Default DeadLetter.</summary>
    public PoisonRecordPolicy PoisonRecordPolicy { get; set; } = PoisonRecordPolicy.DeadLetter;

    /// <summary>The dead-letter topic. Default: the record's topic followed by <c>.DLT</c>.</summary>
    public string? DeadLetterTopic { get; set; }

    /// <summary>
    /// The partition assignor of the <see cref="GroupProtocol.Classic"/> protocol. Default CooperativeSticky: a
    /// rebalance revokes only the partitions that move, so the other partitions' transactions go on. Range and
    /// RoundRobin (eager) are supported too. With <see cref="GroupProtocol.Consumer"/> the broker assigns the partitions:
    /// setting this is refused at start-up (choose the broker's assignor with
    /// <c>ConsumerSettings["group.remote.assignor"]</c> instead).
    /// </summary>
    public PartitionAssignmentStrategy AssignmentStrategy
    {
        get => _assignmentStrategy;
        set
        {
            _assignmentStrategy = value;
            AssignmentStrategyIsSet = true;
        }
    }

    /// <summary>
    /// The consumer group protocol. Default <see cref="GroupProtocol.Classic"/> (JoinGroup/SyncGroup, every broker).
    /// <see cref="GroupProtocol.Consumer"/> is the protocol of KIP-848 (brokers 4.0 and later): the broker assigns the
    /// partitions and owns the session timeout and heartbeat interval, so <see cref="AssignmentStrategy"/> and the
    /// consumer settings <c>session.timeout.ms</c>, <c>heartbeat.interval.ms</c> and <c>group.protocol.type</c> are
    /// refused at start-up with it; <c>group.remote.assignor</c> in <see cref="ConsumerSettings"/> picks the broker's
    /// assignor. See the "Kafka 4" section of docs/consume-transform-produce.md.
    /// </summary>
    public GroupProtocol GroupProtocol { get; set; } = GroupProtocol.Classic;

    /// <summary>Where to start in a partition without a committed offset. Default Earliest.</summary>
    public AutoOffsetReset AutoOffsetReset { get; set; } = AutoOffsetReset.Earliest;

    /// <summary>
    /// On shutdown, how long the open transaction may take to commit before it is aborted. Default 10 s. With
    /// <see cref="MaxConcurrency"/> above 1, also how long a revoke waits for the handler calls in flight before it
    /// cancels them and aborts their batch (the partitions then move without it). A handler call that ignores its
    /// cancellation is waited for at most this long again after it is cancelled, then abandoned (see
    /// docs/parallel-processing.md): its batch aborts without it and its later writes are refused. At most 1 day
    /// (refused at start-up above it).
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Whether the consumer joins its group as a static member (KIP-345, brokers 2.3 and later), with
    /// <c>group.instance.id</c> set to the producer's transactional.id, which is already stable per instance. A
    /// restarted instance then gets its partitions back at once, instead of waiting for its previous incarnation's
    /// session to time out (45 s by default). The price: the partitions of an instance that stops and does not come
    /// back wait for that session timeout before another instance takes them. Default <see langword="true"/>.
    /// </summary>
    public bool StaticMembership { get; set; } = true;

    /// <summary>
    /// Whether a processor that can no longer work (Fenced: another instance took over its transactional.id; Faulted:
    /// the producer's self-healing gave up, or a poison record met the Stop policy) stops the application, with a
    /// Critical log saying why and exit code 1, so that an orchestrator notices and replaces the instance. This is
    /// .NET's convention for a failed BackgroundService. When <see langword="false"/>, the processor stops alone and
    /// the application goes on (read <see cref="ITransactionalProcessor.State"/> in a health check). Default <see langword="true"/>.
    /// </summary>
    public bool StopApplicationOnFailure { get; set; } = true;

    /// <summary>
    /// Further librdkafka consumer settings. Security settings (<c>security.protocol</c>, <c>sasl.*</c>, <c>ssl.*</c>)
    /// of the producer's ClientSettings apply to the consumer too unless set here. Settings that would break
    /// exactly-once (auto-commit, read_uncommitted) are refused at start-up.
    /// </summary>
    public IDictionary<string, string> ConsumerSettings { get; set; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Whether <see cref="AssignmentStrategy"/> was set, by code or configuration, rather than left at its default.</summary>
    internal bool AssignmentStrategyIsSet { get; private set; }

    /// <summary>Deserializers registered per type with <c>AddDeserializer</c>, for the records this processor consumes.</summary>
    internal DeserializerRegistry Deserializers { get; } = new();

    internal string DeadLetterTopicFor(string topic) => string.IsNullOrWhiteSpace(DeadLetterTopic) ? topic + ".DLT" : DeadLetterTopic;
}
