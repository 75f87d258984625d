using Microsoft.Extensions.Configuration;
using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.Processing;

/// <summary>
/// Mistakes refused at start-up, with messages naming the cause and the fix: a processor's producer used by anything
/// else, a handler type without a deserializer, and every producer's and processor's problems reported together.
/// </summary>
public class StartupRefusalTests
{
    private static Action<KafkaTransactionsOptions> Producer(string prefix) => o =>
    {
        o.BootstrapServers = "fake:9092";
        o.TransactionalIdPrefix = prefix;
        o.InstanceId = "0";
    };

    private static void Orders(TransactionalProcessorOptions o)
    {
        o.Topics.Add("orders");
        o.GroupId = "shipping";
    }

    private static HostApplicationBuilder Builder(FakeClientFactory factory)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddKafkaTransactions("web", Producer("web")).UseClientFactory(factory); // the application's factory for every producer
        return builder;
    }

    [Fact]
    public async Task Resolving_the_unit_of_work_of_a_processors_producer_is_refused_naming_the_cause_and_the_fix()
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(Producer("shop")).UseClientFactory(new FakeClientFactory()).AddTransactionalProcessor<ShipmentHandler>(Orders);
        services.AddKafkaTransactions("payments", Producer("payments")).AddTransactionalProcessor<ShipmentHandler>(Orders);
        await using var provider = services.BuildServiceProvider();

        var unkeyed = () => provider.GetRequiredService<ITransactionalUnitOfWork>();
        var keyed = () => provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("payments");

        unkeyed.Should().Throw<InvalidOperationException>().WithMessage(
            "The producer '(default)' is owned by the transactional processor '(default)' (handler ShipmentHandler)*ITransactionalUnitOfWork*collide*AddKafkaTransactions(\"web\", ...) for ExecuteAsync*");
        keyed.Should().Throw<InvalidOperationException>().WithMessage("The producer 'payments' is owned by the transactional processor 'payments'*");
    }

    [Fact]
    public async Task A_pool_or_InitializeOnStart_on_a_processors_builder_fails_the_start_and_resolving_the_pool_is_refused()
    {
        var factory = new FakeClientFactory { Broker = new FakeBroker() };
        var builder = Builder(factory);
        builder.Services.AddKafkaTransactions("shop", Producer("shop")).AddTransactionalProcessor<ShipmentHandler>(Orders).AddUnitOfWorkPool(2).InitializeOnStart();
        using var host = builder.Build();

        var pool = () => host.Services.GetRequiredKeyedService<ITransactionalUnitOfWorkPool>("shop");
        var start = () => host.StartAsync();

        pool.Should().Throw<InvalidOperationException>().WithMessage("The producer 'shop' is owned by the transactional processor 'shop'*ITransactionalUnitOfWorkPool*");
        var failure = (await start.Should().ThrowAsync<OptionsValidationException>()).Which;
        failure.Failures.Should().HaveCount(2)
            .And.Contain(f => f.Contains("owned by the transactional processor 'shop'") && f.Contains("AddUnitOfWorkPool"))
            .And.Contain(f => f.Contains("owned by the transactional processor 'shop'") && f.Contains("InitializeOnStart"));
        factory.Consumers.Should().BeEmpty("nothing is consumed by an application refused at start-up");
    }

    [Fact]
    public void Two_transactions_on_one_unit_name_a_processor_as_the_likely_cause()
    {
        var message = KafkaTx.UnitOfWork.TransactionTransitions.Busy(TransactionState.Committing, "shop-0").Message;

        message.Should().StartWith("BeginTransaction cannot open a transaction now (state Committing): 'shop-0' already has one open")
            .And.Contain("use ExecuteAsync, which queues them").And.Contain("AddUnitOfWorkPool")
            .And.Contain("If a transactional processor is registered on this producer's builder").And.Contain("AddKafkaTransactions(\"web\", ...)")
            .And.NotContainAny("not valid", "likely cause");
    }

    [Fact]
    public async Task A_handler_type_without_a_deserializer_fails_the_start_before_anything_is_consumed()
    {
        var factory = new FakeClientFactory { Broker = new FakeBroker() };
        var builder = Builder(factory);
        builder.Services.AddKafkaTransactions("shipping", Producer("shipping")).AddTransactionalProcessor<OrderHandler>(Orders);
        using var host = builder.Build();

        var failure = (await host.Invoking(h => h.StartAsync()).Should().ThrowAsync<OptionsValidationException>()).Which;

        failure.Failures.Should().ContainSingle().Which.Should()
            .Contain("Transactional processor 'shipping'").And.Contain("OrderHandler").And.Contain("values of type " + typeof(Order).FullName)
            .And.Contain(".AddDeserializer(new KafkaJsonSerde<Order>())");
        factory.Consumers.Should().BeEmpty();
    }

    [Fact]
    public async Task A_handler_type_with_a_registered_deserializer_starts()
    {
        var factory = new FakeClientFactory { Broker = new FakeBroker() };
        var builder = Builder(factory);
        builder.Services.AddKafkaTransactions("shipping", Producer("shipping"))
            .AddDeserializer(new KafkaJsonSerde<Order>())
            .AddTransactionalProcessor<OrderHandler>(Orders);
        using var host = builder.Build();

        await host.StartAsync();
        await host.StopAsync();
    }

    [Fact]
    public async Task Every_producers_and_processors_problems_are_reported_together()
    {
        var builder = Host.CreateApplicationBuilder();
        // Servers unset whatever the machine has: a broker run sets KAFKATX_BOOTSTRAP_SERVERS, which hosts read.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["KAFKATX_BOOTSTRAP_SERVERS"] = "" });
        builder.Logging.ClearProviders();
        builder.Services.AddKafkaTransactions("payments", o => o.BootstrapServers = "fake:9092"); // no transactional id
        builder.Services.AddKafkaTransactions("audit", o => o.TransactionalId = "audit-0"); // no servers
        builder.Services.AddKafkaTransactions("shipping", o =>
        {
            o.TransactionalId = "shipping-0"; // no servers either, and a processor without a group or a deserializer
        }).UseClientFactory(new FakeClientFactory()).AddTransactionalProcessor<OrderHandler>(o => o.Topics.Add("orders"));
        using var host = builder.Build();

        var failure = await Record.ExceptionAsync(() => host.StartAsync());

        // The host's start-up validation throws one AggregateException of every options' OptionsValidationException.
        failure.Should().BeOfType<AggregateException>().Which.InnerExceptions.Should().AllBeOfType<OptionsValidationException>();
        failure!.Message.Should()
            .Contain("KafkaTransactions 'payments': no transactional id")
            .And.Contain("KafkaTransactions 'audit': BootstrapServers is missing")
            .And.Contain("KafkaTransactions 'shipping': BootstrapServers is missing")
            .And.Contain("Transactional processor 'shipping': GroupId is missing")
            .And.Contain("Transactional processor 'shipping': its handler OrderHandler takes values of type");
    }

    internal sealed record Order(string Id);

    private sealed class ShipmentHandler : ITransactionalHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    private sealed class OrderHandler : ITransactionalHandler<string, Order>
    {
        public ValueTask HandleAsync(ConsumeResult<string, Order> record, ITransactionScope transaction, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
