using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaTx;
using KafkaTx.Testing;

namespace KafkaTx.Samples;

/// <summary>
/// Where a sample runs: the broker given by --bootstrap-servers or KAFKATX_BOOTSTRAP_SERVERS, else KafkaTx.Testing's
/// in-memory Kafka inside this process, which keeps Kafka's transactional semantics (read_committed, fencing,
/// transactional offsets) with zero setup.
/// </summary>
public sealed class Backend
{
    private Backend(string bootstrapServers, string description, InMemoryKafkaCluster? cluster)
    {
        BootstrapServers = bootstrapServers;
        Description = description;
        Cluster = cluster;
    }

    public string BootstrapServers { get; }

    public string Description { get; }

    public InMemoryKafkaCluster? Cluster { get; }

    public bool IsEmbedded => Cluster is not null;

    public static Backend Choose(string[] args)
    {
        var index = Array.IndexOf(args, "--bootstrap-servers");
        var servers = index >= 0 && index + 1 < args.Length ? args[index + 1] : Environment.GetEnvironmentVariable("KAFKATX_BOOTSTRAP_SERVERS");
        if (!string.IsNullOrWhiteSpace(servers))
        {
            return new Backend(servers, $"Kafka at {servers}", null);
        }

        var cluster = new InMemoryKafkaCluster();
        return new Backend(cluster.BootstrapServers, "embedded in-memory Kafka (KafkaTx.Testing: transactional semantics, no broker)", cluster);
    }

    /// <summary>Points KafkaTx at this backend.</summary>
    public IKafkaTransactionsBuilder Use(IKafkaTransactionsBuilder builder) => Cluster is null ? builder : builder.UseInMemoryKafka(Cluster);

    public void CreateTopics(int partitions, params IEnumerable<string> topics)
    {
        if (Cluster is not null)
        {
            foreach (var topic in topics)
            {
                Cluster.CreateTopic(topic, partitions);
            }

            return;
        }

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = BootstrapServers }).Build();
        try
        {
            admin.CreateTopicsAsync(topics.Select(name => new TopicSpecification { Name = name, NumPartitions = partitions, ReplicationFactor = -1 })).Wait(TimeSpan.FromSeconds(30));
        }
        catch (AggregateException e) when (e.InnerException is CreateTopicsException created && created.Results.All(r => r.Error.Code is ErrorCode.NoError or ErrorCode.TopicAlreadyExists))
        {
            // Topics that exist already are fine.
        }
    }

    public IProducer<byte[]?, byte[]?> CreateProducer() =>
        Cluster?.CreateProducer(new ProducerConfig()) ?? new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = BootstrapServers }).Build();

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config)
    {
        config.BootstrapServers = BootstrapServers;
        return Cluster?.CreateConsumer(config) ?? new ConsumerBuilder<byte[]?, byte[]?>(config).Build();
    }

    public int PartitionCount(string topic)
    {
        if (Cluster is not null)
        {
            return Cluster.PartitionCount(topic);
        }

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = BootstrapServers }).Build();
        return admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single().Partitions.Count;
    }
}
