using Confluent.Kafka;
using KafkaTx.Clients;
using KafkaTx.Testing;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// UseInMemoryKafka(whenInMemory) and UseInMemoryKafkaWhenNoBootstrapServers(whenInMemory): the set-up runs once, before
/// the builder's first client, and only when the builder does run in memory.
/// </summary>
public class InMemorySetUpTests
{
    private static void NoEnvironment(IServiceCollection services) =>
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [KafkaTransactionsOptions.BootstrapServersEnvironmentVariable] = "" })
            .Build());

    [Fact]
    public async Task Running_in_memory_the_set_up_runs_once_before_the_first_client_and_the_processor_finds_its_topic()
    {
        var runs = 0;
        var clientsOpenAtFirstSetUp = -1;
        var builder = Host.CreateApplicationBuilder();
        NoEnvironment(builder.Services);
        void SetUp(InMemoryKafkaCluster cluster)
        {
            if (Interlocked.Increment(ref runs) == 1)
            {
                clientsOpenAtFirstSetUp = cluster.Clients.OpenCount;
            }

            cluster.CreateTopic("orders", 3);
            cluster.CreateTopic("shipments", 3);
        }

        // Two builders share the cluster and both create the same topics: idempotent.
        builder.Services.AddKafkaTransactions("web", o =>
        {
            o.BootstrapServers = "";
            o.TransactionalIdPrefix = "web";
            o.InstanceId = "0";
        }).UseInMemoryKafkaWhenNoBootstrapServers(SetUp);
        builder.Services.AddKafkaTransactions("shipping", o =>
        {
            o.TransactionalIdPrefix = "shipping";
            o.InstanceId = "0";
        }).UseInMemoryKafkaWhenNoBootstrapServers(SetUp).AddTransactionalProcessor<Ship>(p =>
        {
            p.Topics.Add("orders");
            p.GroupId = "shipping";
            p.MaxBatchDuration = TimeSpan.FromMilliseconds(50);
        });
        using var host = builder.Build();
        var kafka = host.Services.GetRequiredService<InMemoryKafkaCluster>();
        runs.Should().Be(0, "nothing runs while the container is built");

        await host.StartAsync();
        await ProcessorHarness.Until(() => Volatile.Read(ref runs) == 1, "the processor's builder runs its set-up before its first client");
        clientsOpenAtFirstSetUp.Should().Be(0, "the processor's consumer and producer are created after the set-up");
        var web = host.Services.GetRequiredKeyedService<ITransactionalUnitOfWork>("web"); // creates the web producer: its builder's set-up runs
        for (var i = 0; i < 3; i++)
        {
            await web.ExecuteAsync(tx => tx.Produce("orders", new Message<string, string> { Key = $"order-{i}", Value = "v" }));
        }

        await ProcessorHarness.Until(() => kafka.ReadTopic("shipments").Count == 3, "every order is shipped");
        await host.StopAsync();

        runs.Should().Be(2, "once per builder, however many clients it creates");
        kafka.PartitionCount("orders").Should().Be(3, "the subscription found the topic the set-up created");
    }

    [Fact]
    public async Task UseInMemoryKafka_with_a_set_up_runs_it_once_before_the_producer_is_created()
    {
        var runs = 0;
        var clientsOpenAtSetUp = -1;
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.TransactionalIdPrefix = "seeded";
            o.InstanceId = "0";
        }).UseInMemoryKafka(cluster =>
        {
            runs++;
            clientsOpenAtSetUp = cluster.Clients.OpenCount;
            cluster.CreateTopic("out", 4);
        });
        await using var provider = services.BuildServiceProvider();
        runs.Should().Be(0, "nothing runs while the container is built");
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>(); // creates the producer

        runs.Should().Be(1);
        await unit.ExecuteAsync(tx => tx.Produce("out", new Message<string, string> { Key = "k", Value = "v" }));
        await unit.ExecuteAsync(tx => tx.Produce("out", new Message<string, string> { Key = "k", Value = "v" }));

        runs.Should().Be(1);
        clientsOpenAtSetUp.Should().Be(0);
        provider.GetRequiredService<InMemoryKafkaCluster>().PartitionCount("out").Should().Be(4);
    }

    [Fact]
    public async Task With_bootstrap_servers_configured_the_set_up_never_runs()
    {
        var runs = 0;
        var fake = new FakeClientFactory();
        var services = new ServiceCollection();
        NoEnvironment(services);
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "broker-1:9092";
            o.TransactionalIdPrefix = "real";
            o.InstanceId = "0";
        }).UseClientFactory(fake).UseInMemoryKafkaWhenNoBootstrapServers(_ => runs++);
        await using var provider = services.BuildServiceProvider();

        await provider.GetRequiredService<ITransactionalUnitOfWork>().InitializeAsync();

        provider.GetRequiredService<ClientFactories>().For(string.Empty).Should().BeSameAs(fake);
        fake.Configs.Should().ContainSingle("the producer ran on the configured factory");
        runs.Should().Be(0, "a builder on a broker never runs the in-memory set-up");
    }

    [Fact]
    public async Task A_set_up_that_throws_fails_the_client_with_a_message_naming_it_and_runs_again_before_the_next()
    {
        var runs = 0;
        var kafka = new InMemoryKafkaCluster();
        var services = new ServiceCollection();
        services.AddSingleton(kafka);
        services.AddKafkaTransactions("orders", o =>
        {
            o.TransactionalIdPrefix = "orders";
            o.InstanceId = "0";
        }).UseInMemoryKafka(cluster =>
        {
            if (++runs == 1)
            {
                cluster.CreateTopic("orders", 2);
            }

            cluster.CreateTopic("orders", 3); // the first run finds 2 partitions and throws; the second too
        });
        await using var provider = services.BuildServiceProvider();

        var failure = FluentActions.Invoking(() => provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("orders")).Should().Throw<InvalidOperationException>().Which;

        failure.Message.Should().Contain("producer 'orders'").And.Contain("whenInMemory").And.Contain("CreateTopic('orders', 3)").And.Contain("2 partition(s)");
        failure.InnerException.Should().BeOfType<InvalidOperationException>();
        kafka.Clients.OpenCount.Should().Be(0, "no client was created");
        FluentActions.Invoking(() => provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("orders")).Should().Throw<InvalidOperationException>();
        runs.Should().Be(2, "a set-up that failed runs again before the next client");
    }

    [Fact]
    public void CreateTopic_of_an_existing_topic_with_the_same_count_does_nothing_and_with_another_count_says_what_to_do()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("orders", 3);

        kafka.CreateTopic("orders", 3);
        kafka.PartitionCount("orders").Should().Be(3);

        kafka.Invoking(k => k.CreateTopic("orders", 5)).Should().Throw<InvalidOperationException>()
            .WithMessage("CreateTopic('orders', 5): the topic already exists with 3 partition(s)*Ask for 3 everywhere*");
    }

    private sealed class Ship : ITransactionalHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            transaction.Produce("shipments", new Message<string, string> { Key = record.Message.Key, Value = "shipped" });
            return ValueTask.CompletedTask;
        }
    }
}
