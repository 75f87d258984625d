using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.DependencyInjection;

public class AddKafkaTransactionsTests
{
    private static void Valid(KafkaTransactionsOptions o)
    {
        o.BootstrapServers = "fake:9092";
        o.TransactionalIdPrefix = "task-api";
        o.InstanceId = "0";
    }

    [Fact]
    public async Task Registers_one_unit_of_work_reachable_with_and_without_a_key()
    {
        var factory = new FakeClientFactory();
        var services = new ServiceCollection();
        services.AddKafkaTransactions(Valid).UseClientFactory(factory);
        await using var provider = services.BuildServiceProvider();

        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        unit.TransactionalId.Should().Be("task-api-0");
        provider.GetRequiredService<ITransactionalUnitOfWork>().Should().BeSameAs(unit);
        provider.GetRequiredKeyedService<ITransactionalUnitOfWork>(string.Empty).Should().BeSameAs(unit);
        factory.Producers.Should().ContainSingle();
    }

    [Fact]
    public async Task Named_producers_are_separate_keyed_units_with_their_own_ids()
    {
        var factory = new FakeClientFactory();
        var services = new ServiceCollection();
        services.AddKafkaTransactions("payments", o =>
        {
            Valid(o);
            o.TransactionalIdPrefix = "payment-processor";
        }).UseClientFactory(factory);
        services.AddKafkaTransactions("orders", o =>
        {
            Valid(o);
            o.TransactionalIdPrefix = "order-processor";
        });
        await using var provider = services.BuildServiceProvider();

        var payments = provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("payments");
        var orders = provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("orders");

        payments.TransactionalId.Should().Be("payment-processor-0");
        orders.TransactionalId.Should().Be("order-processor-0");
        factory.Producers.Should().HaveCount(2);
    }

    [Fact]
    public async Task Two_names_resolving_to_one_transactional_id_are_refused()
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions("a", Valid).UseClientFactory(new FakeClientFactory());
        services.AddKafkaTransactions("b", Valid);
        await using var provider = services.BuildServiceProvider();
        provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("a");

        var act = () => provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("b");

        act.Should().Throw<InvalidOperationException>().WithMessage("*'a' and 'b'*task-api-0*fence each other*");
    }

    [Fact]
    public async Task A_configuration_that_sets_only_the_transaction_timeout_starts_and_the_other_timeouts_follow_it()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["KafkaTx:BootstrapServers"] = "broker-1:9092",
            ["KafkaTx:TransactionalId"] = "order-processor-0",
            ["KafkaTx:TransactionTimeout"] = "00:00:20",
        }).Build();
        var factory = new FakeClientFactory();
        var services = new ServiceCollection();
        services.AddKafkaTransactions(configuration.GetSection("KafkaTx")).UseClientFactory(factory);
        await using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptionsMonitor<KafkaTransactionsOptions>>().Get(string.Empty);
        provider.GetRequiredService<ITransactionalUnitOfWork>();

        options.DeliveryTimeout.Should().Be(TimeSpan.FromSeconds(15));
        options.CommitTimeout.Should().Be(TimeSpan.FromSeconds(10));
        factory.Configs.Single().MessageTimeoutMs.Should().Be(15_000);
    }

    [Fact]
    public async Task Options_bind_from_configuration()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["KafkaTx:BootstrapServers"] = "broker-1:9092,broker-2:9092",
            ["KafkaTx:TransactionalIdPrefix"] = "order-processor",
            ["KafkaTx:InstanceId"] = "3",
            ["KafkaTx:TransactionTimeout"] = "00:00:30",
            ["KafkaTx:DeliveryTimeout"] = "00:00:20",
            ["KafkaTx:CommitTimeout"] = "00:00:20",
            ["KafkaTx:Retry:MaxAttempts"] = "5",
            ["KafkaTx:ClientSettings:security.protocol"] = "SSL",
        }).Build();
        var factory = new FakeClientFactory();
        var services = new ServiceCollection();
        services.AddKafkaTransactions(configuration.GetSection("KafkaTx")).UseClientFactory(factory);
        await using var provider = services.BuildServiceProvider();

        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        var options = provider.GetRequiredService<IOptionsMonitor<KafkaTransactionsOptions>>().Get(string.Empty);

        unit.TransactionalId.Should().Be("order-processor-3");
        options.Retry.MaxAttempts.Should().Be(5);
        factory.Configs.Single().BootstrapServers.Should().Be("broker-1:9092,broker-2:9092");
        factory.Configs.Single().TransactionTimeoutMs.Should().Be(30_000);
        factory.Configs.Single().Get("security.protocol").Should().Be("SSL");
    }

    [Fact]
    public async Task Invalid_options_stop_the_host_at_start_up_before_any_client_is_created()
    {
        var factory = new FakeClientFactory();
        var builder = Host.CreateApplicationBuilder();
        // Servers unset whatever the machine has: a broker run sets KAFKATX_BOOTSTRAP_SERVERS, which hosts read.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["KAFKATX_BOOTSTRAP_SERVERS"] = "" });
        builder.Services.AddKafkaTransactions(o =>
        {
            o.TransactionalIdPrefix = "task-api";
            o.InstanceId = "0";
            o.DeliveryTimeout = TimeSpan.FromMinutes(2);
        }).UseClientFactory(factory);
        using var host = builder.Build();

        var act = () => host.StartAsync();

        var failure = (await act.Should().ThrowAsync<OptionsValidationException>()).Which;
        failure.Failures.Should().HaveCount(2);
        failure.Message.Should().Contain("BootstrapServers is missing").And.Contain("message.timeout.ms");
        factory.Producers.Should().BeEmpty();
    }

    [Fact]
    public async Task A_serializer_registered_on_the_builder_is_used()
    {
        var factory = new FakeClientFactory();
        var services = new ServiceCollection();
        services.AddKafkaTransactions(Valid).UseClientFactory(factory).AddSerializer(new GuidSerializer());
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        var id = Guid.NewGuid();

        await unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("t", new Confluent.Kafka.Message<Guid, string> { Key = id, Value = "v" });
            return ValueTask.CompletedTask;
        });

        factory.Current.Committed.Single().Key.Should().Equal(id.ToByteArray());
    }

    [Fact]
    public async Task Disposing_the_service_provider_disposes_the_producer()
    {
        var factory = new FakeClientFactory();
        var services = new ServiceCollection();
        services.AddKafkaTransactions(Valid).UseClientFactory(factory);
        var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        await provider.DisposeAsync();

        unit.State.Should().Be(TransactionState.Disposed);
        factory.Current.IsDisposed.Should().BeTrue();
    }

    private sealed class GuidSerializer : Confluent.Kafka.ISerializer<Guid>
    {
        public byte[] Serialize(Guid data, Confluent.Kafka.SerializationContext context) => data.ToByteArray();
    }
}
