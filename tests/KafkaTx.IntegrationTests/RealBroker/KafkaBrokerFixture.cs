using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Testcontainers.Kafka;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// A real Kafka broker for the tests that need Kafka's own semantics (fencing, read_committed, transactional
/// offsets): the one named by KAFKATX_BOOTSTRAP_SERVERS, else one started by Testcontainers when a Docker engine
/// answers, else none, and the tests are skipped with the reason.
/// </summary>
public sealed class KafkaBrokerFixture : IAsyncLifetime
{
    public const string BootstrapServersVariable = "KAFKATX_BOOTSTRAP_SERVERS";
    private const string Image = "confluentinc/cp-kafka:7.5.12";
    private KafkaContainer? _container;
    private Support.BrokerFeatures? _features;

    public string? BootstrapServers { get; private set; }

    public string UnavailableReason { get; private set; } = "not initialized";

    public async Task InitializeAsync()
    {
        var configured = Environment.GetEnvironmentVariable(BootstrapServersVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            BootstrapServers = configured;
            return;
        }

        try
        {
            _container = new KafkaBuilder(Image).Build();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            await _container.StartAsync(timeout.Token);
            BootstrapServers = $"{_container.Hostname}:{_container.GetMappedPublicPort(KafkaBuilder.KafkaPort)}";
        }
        catch (Exception e)
        {
            var cause = e.Message.Split('\n')[0].Trim();
            UnavailableReason = $"No real Kafka broker: {BootstrapServersVariable} is not set and Testcontainers could not start {Image} ({e.GetType().Name}: {cause}). These tests need Kafka's fencing and read_committed, which no in-process backend here emulates.";
            if (_container is not null)
            {
                await _container.DisposeAsync();
                _container = null;
            }
        }
    }

    public async Task DisposeAsync()
    {
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }

    /// <summary>Skips the calling test, with the reason, when there is no broker.</summary>
    public string RequireBroker()
    {
        Skip.If(BootstrapServers is null, UnavailableReason);
        return BootstrapServers!;
    }

    /// <summary>
    /// Skips the calling test, with the reason, when there is no broker or the broker lacks the group protocol (the
    /// consumer protocol of KIP-848 needs ConsumerGroupHeartbeat, API 68: Kafka 4.0 and later). Returns the broker.
    /// </summary>
    public async Task<string> RequireBrokerAsync(GroupProtocol protocol)
    {
        var servers = RequireBroker();
        _features ??= await Support.BrokerFeatures.DetectAsync(servers);
        var lacking = _features.Lacks(protocol);
        Skip.If(lacking is not null, lacking);
        return servers;
    }

    /// <summary>Creates topics with unique names, so that tests never see each other's records.</summary>
    public async Task<string[]> CreateTopicsAsync(int partitions, params string[] prefixes) =>
        await CreateTopicsAsync(partitions, new Dictionary<string, string>(), prefixes);

    public async Task<string[]> CreateTopicsAsync(int partitions, Dictionary<string, string> configs, params string[] prefixes)
    {
        var names = prefixes.Select(prefix => $"{prefix}-{Guid.NewGuid():N}").ToArray();
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = BootstrapServers }).Build();
        await admin.CreateTopicsAsync(names.Select(name => new TopicSpecification
        {
            Name = name,
            NumPartitions = partitions,
            ReplicationFactor = -1, // the broker's default, so that any cluster size works
            Configs = configs,
        }));
        return names;
    }
}

[CollectionDefinition(Name)]
public sealed class RealBrokerGroup : ICollectionFixture<KafkaBrokerFixture>
{
    public const string Name = "Real Kafka broker";
}
