using KafkaTx.Throughput.Backends;
using KafkaTx.Throughput.Reporting;

namespace KafkaTx.Throughput.Modes;

/// <summary>The names one run uses: fresh for every run, so that runs never see each other's records or offsets.</summary>
internal sealed record RunNames(string Input, string Output, string GroupId, string TransactionalId);

/// <summary>One contender: writes (or copies) the workload's records and reports what it measured.</summary>
internal abstract class ThroughputMode
{
    /// <summary>The letter the issue and the docs use: a to e.</summary>
    public abstract string Letter { get; }

    public abstract string Name { get; }

    /// <summary>Copies records from an input topic instead of writing new ones.</summary>
    public virtual bool Copies => false;

    public abstract Task<RunResult> RunAsync(ThroughputBackend backend, Workload workload, RunNames names, CancellationToken cancellationToken);

    /// <summary>The settings every raw Confluent.Kafka producer of the harness shares; transactional when given an id.</summary>
    internal static Confluent.Kafka.ProducerConfig RawProducerConfig(ThroughputBackend backend, Workload workload, string? transactionalId = null) => new()
    {
        BootstrapServers = backend.BootstrapServers,
        TransactionalId = transactionalId,
        EnableIdempotence = true,
        Acks = Confluent.Kafka.Acks.All,
        LingerMs = workload.LingerMs,
    };

    /// <summary>The settings every KafkaTx registration of the harness shares, as the raw producers'.</summary>
    internal static Action<KafkaTransactionsOptions> KafkaTxOptions(ThroughputBackend backend, Workload workload, string transactionalId, DeliveryTracking deliveryTracking) => o =>
    {
        o.BootstrapServers = backend.BootstrapServers;
        o.TransactionalId = transactionalId;
        o.DeliveryTracking = deliveryTracking;
        o.Linger = TimeSpan.FromMilliseconds(workload.LingerMs);
    };

    protected static void Produce(Confluent.Kafka.IProducer<byte[]?, byte[]?> producer, string topic, Workload workload, Confluent.Kafka.Message<byte[]?, byte[]?> message, long index)
    {
        message.Key = workload.Keys[index % workload.Keys.Length];
        producer.ProduceWaitingForRoom(new Confluent.Kafka.TopicPartition(topic, Confluent.Kafka.Partition.Any), message, TimeSpan.FromMilliseconds(1));
    }
}
