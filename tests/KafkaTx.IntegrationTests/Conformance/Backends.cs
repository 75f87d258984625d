using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaTx.IntegrationTests.MockCluster;
using KafkaTx.IntegrationTests.RealBroker;
using KafkaTx.Testing;

namespace KafkaTx.IntegrationTests.Conformance;

/// <summary>Clients through the real Confluent.Kafka stack, for the mock cluster and real brokers.</summary>
public abstract class ConfluentBackend : IConformanceBackend
{
    public abstract string BootstrapServers { get; }

    public abstract string? Lacks(Capability capability);

    public abstract void RequireAvailable();

    public virtual Task RequireProtocolAsync(GroupProtocol protocol) => Task.CompletedTask;

    public virtual async Task<string[]> CreateTopicsAsync(int partitions, params string[] prefixes)
    {
        var names = prefixes.Select(p => $"{p}-{Guid.NewGuid():N}").ToArray();
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = BootstrapServers }).Build();
        await admin.CreateTopicsAsync(names.Select(n => new TopicSpecification { Name = n, NumPartitions = partitions, ReplicationFactor = -1 }));
        return names;
    }

    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config)
    {
        config.BootstrapServers = BootstrapServers;
        return new ProducerBuilder<byte[]?, byte[]?>(config).SetLogHandler((_, _) => { }).Build();
    }

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config)
    {
        config.BootstrapServers = BootstrapServers;
        return new ConsumerBuilder<byte[]?, byte[]?>(config).SetLogHandler((_, _) => { }).Build();
    }

    public int PartitionCount(string topic)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = BootstrapServers }).Build();
        return admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single().Partitions.Count;
    }

    public IKafkaTransactionsBuilder Use(IKafkaTransactionsBuilder builder) => builder;
}

public sealed class InMemoryBackend : IConformanceBackend
{
    public InMemoryKafkaCluster Cluster { get; } = new();

    public string BootstrapServers => Cluster.BootstrapServers;

    public string? Lacks(Capability capability) => null;

    public void RequireAvailable()
    {
    }

    public Task RequireProtocolAsync(GroupProtocol protocol) => Task.CompletedTask;

    public Task<string[]> CreateTopicsAsync(int partitions, params string[] prefixes)
    {
        var names = prefixes.Select(p => $"{p}-{Guid.NewGuid():N}").ToArray();
        foreach (var name in names)
        {
            Cluster.CreateTopic(name, partitions);
        }

        return Task.FromResult(names);
    }

    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config) => Cluster.CreateProducer(config);

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config) => Cluster.CreateConsumer(config);

    public int PartitionCount(string topic) => Cluster.PartitionCount(topic);

    public IKafkaTransactionsBuilder Use(IKafkaTransactionsBuilder builder) => builder.UseInMemoryKafka(Cluster);
}

public sealed class MockClusterBackend : ConfluentBackend, IDisposable
{
    private readonly MockKafkaCluster _cluster = new();

    public override string BootstrapServers => _cluster.BootstrapServers;

    public override string? Lacks(Capability capability) => capability switch
    {
        Capability.ReadCommitted => "librdkafka's mock cluster does not emulate read_committed: it shows open and aborted records",
        Capability.Fencing => "librdkafka's mock cluster does not fence a producer whose transactional.id was initialized again",
        Capability.TransactionalOffsets => "librdkafka's mock cluster accepts TxnOffsetCommit but does not store the offsets",
        Capability.CoordinatorTimeout => "librdkafka's mock cluster does not abort transactions older than transaction.timeout.ms",
        _ => null,
    };

    public override void RequireAvailable()
    {
    }

    public override Task<string[]> CreateTopicsAsync(int partitions, params string[] prefixes)
    {
        // The mock's admin API times out waiting for a controller; its own call creates topics.
        var names = prefixes.Select(p => $"{p}-{Guid.NewGuid():N}").ToArray();
        foreach (var name in names)
        {
            _cluster.CreateTopic(name, partitions);
        }

        return Task.FromResult(names);
    }

    public void Dispose() => _cluster.Dispose();
}

public sealed class RealBrokerBackend(KafkaBrokerFixture broker) : ConfluentBackend
{
    public override string BootstrapServers => broker.BootstrapServers ?? "unavailable:9092";

    public override string? Lacks(Capability capability) => null;

    public override void RequireAvailable() => broker.RequireBroker();

    public override Task RequireProtocolAsync(GroupProtocol protocol) => broker.RequireBrokerAsync(protocol);
}
