using Confluent.Kafka;
using KafkaTx.IntegrationTests.MockCluster;
using KafkaTx.Testing;

namespace KafkaTx.Throughput.Backends;

/// <summary>Where the records go: KafkaTx.Testing's in-memory Kafka, librdkafka's mock cluster, or a real broker.</summary>
internal abstract class ThroughputBackend : IDisposable
{
    public abstract string Description { get; }

    /// <summary>A few words for a chart's title.</summary>
    public abstract string ShortName { get; }

    public abstract string BootstrapServers { get; }

    public static ThroughputBackend Create(string kind, string? bootstrapServers) => kind switch
    {
        "in-memory" => new InMemoryBackend(),
        "mock" => new MockBackend(),
        "kafka" => new BrokerBackend(bootstrapServers ?? throw new ArgumentException("--backend kafka needs --bootstrap-servers host:port.")),
        _ => throw new ArgumentException($"Unknown backend '{kind}': use in-memory, mock or kafka."),
    };

    public abstract void CreateTopic(string topic, int partitions);

    /// <summary>Frees what a finished run wrote, where the backend keeps it in this process.</summary>
    public virtual void DeleteTopicData(string topic, int partitions)
    {
    }

    public abstract IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config);

    public abstract IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config);

    /// <summary>Points a KafkaTx registration at this backend.</summary>
    public virtual IKafkaTransactionsBuilder Use(IKafkaTransactionsBuilder builder) => builder;

    public virtual void Dispose()
    {
    }

    private sealed class InMemoryBackend : ThroughputBackend
    {
        private readonly InMemoryKafkaCluster _cluster = new();

        public override string Description => "KafkaTx.Testing in-memory Kafka (in process)";

        public override string ShortName => "in-memory Kafka";

        public override string BootstrapServers => _cluster.BootstrapServers;

        public override void CreateTopic(string topic, int partitions) => _cluster.CreateTopic(topic, partitions);

        public override void DeleteTopicData(string topic, int partitions)
        {
            for (var p = 0; p < partitions; p++)
            {
                var partition = new TopicPartition(topic, p);
                _cluster.DeleteRecordsBefore(partition, _cluster.HighWatermark(partition));
            }
        }

        public override IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config) => _cluster.CreateProducer(config);

        public override IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config) => _cluster.CreateConsumer(config);

        public override IKafkaTransactionsBuilder Use(IKafkaTransactionsBuilder builder) => builder.UseInMemoryKafka(_cluster);
    }

    private class LibrdkafkaBackend(string bootstrapServers) : ThroughputBackend
    {
        public override string Description => $"Kafka at {bootstrapServers}";

        public override string ShortName => "Kafka broker";

        public override string BootstrapServers => bootstrapServers;

        public override void CreateTopic(string topic, int partitions)
        {
            using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
            admin.CreateTopicsAsync([new Confluent.Kafka.Admin.TopicSpecification { Name = topic, NumPartitions = partitions, ReplicationFactor = -1 }])
                .Wait(TimeSpan.FromSeconds(30));
        }

        public override IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config) => new ProducerBuilder<byte[]?, byte[]?>(config).Build();

        public override IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config) => new ConsumerBuilder<byte[]?, byte[]?>(config).Build();
    }

    private sealed class BrokerBackend(string bootstrapServers) : LibrdkafkaBackend(bootstrapServers);

    private sealed class MockBackend : LibrdkafkaBackend
    {
        private readonly MockKafkaCluster _cluster;

        public MockBackend()
            : this(new MockKafkaCluster())
        {
        }

        private MockBackend(MockKafkaCluster cluster)
            : base(cluster.BootstrapServers) => _cluster = cluster;

        public override string Description => $"librdkafka mock cluster ({MockKafkaCluster.BrokerCount} brokers, in process; no read_committed, no fencing)";

        public override string ShortName => "librdkafka mock cluster";

        public override void CreateTopic(string topic, int partitions) => _cluster.CreateTopic(topic, partitions);

        public override void Dispose()
        {
            _cluster.Dispose();
            base.Dispose();
        }
    }
}
