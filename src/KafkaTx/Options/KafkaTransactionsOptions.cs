using Confluent.Kafka;
using KafkaTx.Serialization;

namespace KafkaTx;

/// <summary>
/// Settings of one transactional producer. Bound from configuration or set in code with
/// <c>services.AddKafkaTransactions(options =&gt; ...)</c>, and validated when the application starts:
/// a contradictory setting is reported with the names of the settings involved, before anything is sent.
/// </summary>
public sealed class KafkaTransactionsOptions
{
    /// <summary>
    /// The key read for <see cref="InstanceId"/> when it is not set in code or the producer's configuration section:
    /// first in the application's configuration (with a host: environment variables, command-line arguments,
    /// appsettings.json), then as an environment variable.
    /// </summary>
    public const string InstanceIdEnvironmentVariable = "KAFKATX_INSTANCE_ID";

    /// <summary>
    /// The key read for <see cref="BootstrapServers"/> when it is not set (null, empty or white space) in code or the
    /// producer's configuration section: first in the application's configuration (with a host: environment variables,
    /// command-line arguments, appsettings.json), then as an environment variable.
    /// </summary>
    public const string BootstrapServersEnvironmentVariable = "KAFKATX_BOOTSTRAP_SERVERS";

    private TimeSpan? _deliveryTimeout;
    private TimeSpan? _commitTimeout;
    private TimeSpan? _abortTimeout;
    private TimeSpan? _sendOffsetsTimeout;

    /// <summary>
    /// Kafka's <c>bootstrap.servers</c>: a comma-separated list of host:port. Required, unless the builder runs on
    /// KafkaTx.Testing's in-memory Kafka (<c>UseInMemoryKafka</c>, or <c>UseInMemoryKafkaWhenNoBootstrapServers</c>
    /// when none is configured). When unset (null, empty or white space), <c>KAFKATX_BOOTSTRAP_SERVERS</c> is read from
    /// the application's configuration, then from the environment.
    /// </summary>
    public string? BootstrapServers { get; set; }

    /// <summary>
    /// The complete transactional.id. Set either this, or <see cref="TransactionalIdPrefix"/> (with an instance id).
    /// It must be stable across restarts of one instance and unique across instances: see <c>docs/transactional-id.md</c>.
    /// </summary>
    public string? TransactionalId { get; set; }

    /// <summary>
    /// The service part of the transactional.id, for example <c>order-processor</c>. The id becomes
    /// <c>{prefix}-{instance id}</c>.
    /// </summary>
    public string? TransactionalIdPrefix { get; set; }

    /// <summary>
    /// The stable identity of this instance, for example a StatefulSet pod ordinal or a shard number. Set it in code
    /// or bind it with the other options (<c>"KafkaTx": { "InstanceId": "2" }</c>). When unset, <c>KAFKATX_INSTANCE_ID</c>
    /// is read from the application's configuration, then from the environment. Never a random value: a new id at
    /// every start cannot fence the previous incarnation of this instance.
    /// </summary>
    public string? InstanceId { get; set; }

    /// <summary>
    /// Kafka's <c>transaction.timeout.ms</c>: a transaction open longer than this is aborted by the broker.
    /// KafkaTx also refuses to commit a transaction older than this, and aborts it instead. Default 60 seconds.
    /// The broker caps it at its <c>transaction.max.timeout.ms</c> (15 minutes by default). The delivery, commit, abort
    /// and send-offsets timeouts follow it unless set: changing this one alone is enough.
    /// </summary>
    public TimeSpan TransactionTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Kafka's <c>message.timeout.ms</c> (the delivery timeout): how long a record may take to be acknowledged.
    /// Must be below <see cref="TransactionTimeout"/>, so that a record that cannot be delivered fails the
    /// transaction with its own error instead of the broker silently aborting the transaction.
    /// Default: three quarters of <see cref="TransactionTimeout"/> (45 seconds with the default).
    /// </summary>
    public TimeSpan DeliveryTimeout
    {
        get => _deliveryTimeout ?? Fraction(TransactionTimeout, 3, 4);
        set => _deliveryTimeout = value;
    }

    /// <summary>The deadline for InitTransactions, including retries while the coordinator is unavailable. Default 30 seconds.</summary>
    public TimeSpan InitTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The deadline for a commit, including its retries. It may not exceed <see cref="TransactionTimeout"/>.
    /// When it passes, the outcome is unknown (<see cref="TransactionErrorKind.OutcomeUnknown"/>).
    /// Default: half of <see cref="TransactionTimeout"/> (30 seconds with the default).
    /// </summary>
    public TimeSpan CommitTimeout
    {
        get => _commitTimeout ?? Fraction(TransactionTimeout, 1, 2);
        set => _commitTimeout = value;
    }

    /// <summary>The deadline for an abort, including its retries. Default: half of <see cref="TransactionTimeout"/> (30 seconds with the default).</summary>
    public TimeSpan AbortTimeout
    {
        get => _abortTimeout ?? Fraction(TransactionTimeout, 1, 2);
        set => _abortTimeout = value;
    }

    /// <summary>
    /// The deadline for sending consumer offsets to the transaction, including its retries.
    /// Default: half of <see cref="TransactionTimeout"/> (30 seconds with the default).
    /// </summary>
    public TimeSpan SendOffsetsTimeout
    {
        get => _sendOffsetsTimeout ?? Fraction(TransactionTimeout, 1, 2);
        set => _sendOffsetsTimeout = value;
    }

    /// <summary>
    /// Self-healing: how many times in a row the producer may be replaced after fatal errors that are not fencing
    /// (for example librdkafka's INVALID_TXN_STATE on an abort, or a broker without KIP-360 after a rejected record),
    /// without a transaction completing in between. Each replacement's InitTransactions aborts what the old producer
    /// left open. Past the limit the unit is Faulted. 0 turns self-healing off. Default 3.
    /// </summary>
    public int MaxProducerReplacements { get; set; } = 3;

    /// <summary>
    /// Kafka's <c>linger.ms</c>: how long the producer waits to fill a batch. Nothing of a transaction is visible
    /// before its commit, and the commit sends what still lingers at once, so a longer linger costs read_committed
    /// readers nothing and buys fuller batches where producing is the bottleneck. Default 20 ms, chosen from the
    /// measured curve (docs/performance.md): against 5 ms, about a third more records per second when committing
    /// every 100 ms, no difference for transactions of up to 1,000 records.
    /// </summary>
    public TimeSpan Linger { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Kafka's <c>retry.backoff.ms</c>: the pause before librdkafka retries a request. This bounds how quickly a
    /// transaction that begins right after a commit gets going: while the coordinator still writes the previous
    /// transaction's markers it answers CONCURRENT_TRANSACTIONS, and librdkafka retries after this backoff.
    /// Lower it for many small back-to-back transactions. Default 20 ms (librdkafka's own default is 100 ms).
    /// </summary>
    public TimeSpan RetryBackoff { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Which records get a delivery report: <see cref="DeliveryTracking.FirstRecordPerTopic"/> (the default),
    /// <see cref="DeliveryTracking.EveryRecord"/>, or <see cref="DeliveryTracking.None"/>. What each costs and keeps
    /// is measured in docs/performance.md.
    /// </summary>
    public DeliveryTracking DeliveryTracking { get; set; } = DeliveryTracking.FirstRecordPerTopic;

    /// <summary>How <c>ExecuteAsync</c> re-runs work after an abortable failure.</summary>
    public TransactionRetryOptions Retry { get; set; } = new();

    /// <summary>
    /// Further librdkafka producer settings (for example security settings). Settings that KafkaTx owns, or that
    /// contradict transactions (<c>enable.idempotence=false</c>, <c>acks</c> other than all), are rejected at start-up.
    /// </summary>
    public IDictionary<string, string> ClientSettings { get; set; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Serializers registered per type with <c>AddSerializer</c>; the built-in ones need no registration.</summary>
    internal SerializerRegistry Serializers { get; } = new();

    /// <summary>The transactional.id these options resolve to, or <see langword="null"/> when they do not name one.</summary>
    /// <returns>The complete transactional.id.</returns>
    public string? ResolveTransactionalId()
    {
        if (!string.IsNullOrWhiteSpace(TransactionalId))
        {
            return TransactionalId;
        }

        var instance = string.IsNullOrWhiteSpace(InstanceId) ? Environment.GetEnvironmentVariable(InstanceIdEnvironmentVariable) : InstanceId;
        if (string.IsNullOrWhiteSpace(TransactionalIdPrefix) || string.IsNullOrWhiteSpace(instance))
        {
            return null;
        }

        return $"{TransactionalIdPrefix}-{instance}";
    }

    /// <summary>A copy of these (validated) options for another transactional.id: a pool's slot.</summary>
    internal KafkaTransactionsOptions WithTransactionalId(string transactionalId)
    {
        var copy = (KafkaTransactionsOptions)MemberwiseClone(); // serializers and settings are shared, read-only after start-up
        copy.TransactionalId = transactionalId;
        return copy;
    }

    /// <summary>Builds the librdkafka configuration. Call only on validated options.</summary>
    internal ProducerConfig ToProducerConfig()
    {
        var config = new ProducerConfig(new Dictionary<string, string>(ClientSettings, StringComparer.Ordinal))
        {
            BootstrapServers = BootstrapServers,
            TransactionalId = ResolveTransactionalId(),
            EnableIdempotence = true,
            Acks = Acks.All,
            TransactionTimeoutMs = ToMilliseconds(TransactionTimeout),
            MessageTimeoutMs = ToMilliseconds(DeliveryTimeout),
            LingerMs = Linger.TotalMilliseconds,
            RetryBackoffMs = ToMilliseconds(RetryBackoff),
        };

        // Delivery reports only need the status and the partition: skipping key and value avoids copying them back.
        config.Set("dotnet.producer.delivery.report.fields", "status");
        if (DeliveryTracking == DeliveryTracking.None)
        {
            config.Set("dotnet.producer.enable.delivery.reports", "false"); // no report is built for any record
        }
        return config;
    }

    private static TimeSpan Fraction(TimeSpan value, int numerator, int denominator) => value * numerator / denominator;

    private static int ToMilliseconds(TimeSpan value) => (int)Math.Ceiling(value.TotalMilliseconds);
}
