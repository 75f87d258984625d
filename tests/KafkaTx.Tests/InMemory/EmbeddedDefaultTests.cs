using Confluent.Kafka;
using KafkaTx.Clients;
using KafkaTx.Testing;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// The embedded default is a per-builder choice: UseInMemoryKafka and UseInMemoryKafkaWhenNoBootstrapServers change
/// their own builder's backend only, null and empty servers both count as unset, KAFKATX_BOOTSTRAP_SERVERS is read
/// from the configuration, and each producer logs its backend once.
/// </summary>
public class EmbeddedDefaultTests
{
    private static IServiceCollection Services(ListLogger logger, Dictionary<string, string?>? configuration = null)
    {
        var services = new ServiceCollection();

        // As a host registers it; KAFKATX_BOOTSTRAP_SERVERS present but empty keeps the machine's environment out of the test.
        var settings = configuration ?? new Dictionary<string, string?> { [KafkaTransactionsOptions.BootstrapServersEnvironmentVariable] = "" };
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddLogging(logging => logging.AddProvider(new ListLoggerProvider(logger)));
        return services;
    }

    private static Action<KafkaTransactionsOptions> Producer(string prefix, string? servers) => o =>
    {
        o.BootstrapServers = servers;
        o.TransactionalIdPrefix = prefix;
        o.InstanceId = "0";
    };

    private static Task WriteAsync(ITransactionalUnitOfWork unit, string topic, string value) =>
        unit.ExecuteAsync(tx => tx.Produce(topic, new Message<string, string> { Key = "k", Value = value }));

    [Fact]
    public async Task UseInMemoryKafka_changes_its_own_builder_only()
    {
        var fake = new FakeClientFactory();
        var services = Services(new ListLogger());
        services.AddKafkaTransactions("real", Producer("real", "localhost:9092")).UseClientFactory(fake);
        services.AddKafkaTransactions("memory", Producer("memory", null)).UseInMemoryKafka();
        await using var provider = services.BuildServiceProvider();

        await WriteAsync(provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("memory"), "orders", "in memory");
        await provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("real").InitializeAsync(CancellationToken.None);

        provider.GetRequiredService<InMemoryKafkaCluster>().ReadTopic("orders").Single().ValueText.Should().Be("in memory");
        fake.Configs.Should().ContainSingle("the producer with servers keeps the application's factory")
            .Which.TransactionalId.Should().Be("real-0");
    }

    [Fact]
    public async Task A_producer_with_bootstrap_servers_beside_an_in_memory_one_gets_Confluent_Kafka()
    {
        var services = Services(new ListLogger());
        services.AddKafkaTransactions("memory", Producer("memory", null)).UseInMemoryKafka();
        services.AddKafkaTransactions("web", Producer("web", "localhost:9092"));
        await using var provider = services.BuildServiceProvider();
        var factories = provider.GetRequiredService<ClientFactories>();

        factories.For("web").Should().BeOfType<ConfluentKafkaClientFactory>();
        factories.For("memory").ToString().Should().StartWith("the in-memory Kafka");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public async Task UseInMemoryKafka_accepts_unset_or_empty_bootstrap_servers(string? servers)
    {
        var services = Services(new ListLogger());
        services.AddKafkaTransactions(Producer("empty", servers)).UseInMemoryKafka();
        await using var provider = services.BuildServiceProvider();

        await WriteAsync(provider.GetRequiredService<ITransactionalUnitOfWork>(), "out", "v");

        provider.GetRequiredService<InMemoryKafkaCluster>().ReadTopic("out").Should().ContainSingle();
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public async Task WhenNoBootstrapServers_builders_without_servers_meet_on_one_in_memory_cluster(string? servers)
    {
        var services = Services(new ListLogger());
        services.AddKafkaTransactions("web", Producer("web", servers)).UseInMemoryKafkaWhenNoBootstrapServers();
        services.AddKafkaTransactions("worker", Producer("worker", servers)).UseInMemoryKafkaWhenNoBootstrapServers();
        await using var provider = services.BuildServiceProvider();

        await WriteAsync(provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("web"), "orders", "from web");
        await WriteAsync(provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("worker"), "orders", "from worker");

        provider.GetRequiredService<InMemoryKafkaCluster>().ReadTopic("orders").Select(r => r.ValueText)
            .Should().BeEquivalentTo("from web", "from worker");
    }

    [Fact]
    public async Task WhenNoBootstrapServers_uses_Confluent_Kafka_when_servers_are_configured()
    {
        var services = Services(new ListLogger());
        services.AddKafkaTransactions(Producer("web", "localhost:9092")).UseInMemoryKafkaWhenNoBootstrapServers();
        await using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<ClientFactories>().For(string.Empty).Should().BeOfType<ConfluentKafkaClientFactory>();
    }

    [Fact]
    public async Task KAFKATX_BOOTSTRAP_SERVERS_from_the_configuration_fills_unset_servers_and_means_real_Kafka()
    {
        var services = Services(new ListLogger(), new() { ["KAFKATX_BOOTSTRAP_SERVERS"] = "broker-1:9092" });
        services.AddKafkaTransactions(Producer("web", "")).UseInMemoryKafkaWhenNoBootstrapServers();
        await using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<IOptionsMonitor<KafkaTransactionsOptions>>().Get(string.Empty).BootstrapServers.Should().Be("broker-1:9092");
        provider.GetRequiredService<ClientFactories>().For(string.Empty).Should().BeOfType<ConfluentKafkaClientFactory>();
    }

    [Fact]
    public async Task No_servers_and_no_in_memory_fallback_names_both_fixes()
    {
        var services = Services(new ListLogger());
        services.AddKafkaTransactions(Producer("web", ""));
        await using var provider = services.BuildServiceProvider();

        var act = () => provider.GetRequiredService<ITransactionalUnitOfWork>();

        act.Should().Throw<OptionsValidationException>()
            .WithMessage("*BootstrapServers is missing*KAFKATX_BOOTSTRAP_SERVERS*UseInMemoryKafkaWhenNoBootstrapServers()*");
    }

    [Fact]
    public async Task Each_producer_logs_its_backend_once_at_start()
    {
        var logger = new ListLogger();
        var services = Services(logger);
        services.AddKafkaTransactions("web", Producer("shop-web", "")).UseInMemoryKafkaWhenNoBootstrapServers().AddUnitOfWorkPool(2);
        services.AddKafkaTransactions("explicit", Producer("shop-explicit", "localhost:9092")).UseInMemoryKafka();
        services.AddKafkaTransactions("real", Producer("shop-real", "broker-1:9092,broker-2:9092")).UseInMemoryKafkaWhenNoBootstrapServers();
        await using var provider = services.BuildServiceProvider();

        await WriteAsync(provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("web"), "out", "unit");
        await provider.GetRequiredKeyedService<ITransactionalUnitOfWorkPool>("web").ExecuteAsync(
            (tx, _) =>
            {
                tx.Produce("out", new Message<string, string> { Key = "k", Value = "pool" });
                return ValueTask.CompletedTask;
            },
            CancellationToken.None);
        provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("explicit");
        provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("real");

        var backends = logger.Entries.Where(e => e.Id.Id == 180).ToList();
        backends.Should().HaveCount(3, "once per producer, pool slots included");
        backends.Should().OnlyContain(e => e.Level == LogLevel.Information);
        backends.Should().ContainSingle(e => e.Message.Contains("Producer web ") && e.Message.Contains("shop-web")
            && e.Message.Contains("runs on the in-memory Kafka") && e.Message.Contains("because no bootstrap servers are configured") && e.Message.Contains("UseInMemoryKafkaWhenNoBootstrapServers()"));
        backends.Should().ContainSingle(e => e.Message.Contains("Producer explicit ") && e.Message.Contains("runs on the in-memory Kafka")
            && e.Message.Contains("because UseInMemoryKafka() was called on this builder") && e.Message.Contains("'localhost:9092' are not used"));
        backends.Should().ContainSingle(e => e.Message.Contains("Producer real ") && e.Message.Contains("shop-real")
            && e.Message.Contains("runs on Kafka at bootstrap servers broker-1:9092,broker-2:9092 (configured"));
    }

    [Fact]
    public void A_second_different_cluster_is_refused_naming_the_fix()
    {
        var first = new InMemoryKafkaCluster();
        var services = Services(new ListLogger());
        var builder = services.AddKafkaTransactions("web", Producer("web", null)).UseInMemoryKafka(first);
        services.AddKafkaTransactions("shipping", Producer("shipping", null)).UseInMemoryKafka(first); // the same one: fine

        var sameBuilder = () => builder.UseInMemoryKafka(new InMemoryKafkaCluster());
        var otherBuilder = () => services.AddKafkaTransactions("audit", Producer("audit", null)).UseInMemoryKafka(new InMemoryKafkaCluster());

        sameBuilder.Should().Throw<InvalidOperationException>().WithMessage(
            "UseInMemoryKafka(cluster) on producer 'web' was given a different InMemoryKafkaCluster than an earlier UseInMemoryKafka(cluster) call*Pass the same cluster to every call*");
        otherBuilder.Should().Throw<InvalidOperationException>().WithMessage("UseInMemoryKafka(cluster) on producer 'audit'*");
        using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<InMemoryKafkaCluster>().Should().BeSameAs(first, "the refused calls changed nothing");
    }

    private sealed class ListLoggerProvider(ListLogger logger) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => logger;

        public void Dispose()
        {
        }
    }
}
