using Confluent.Kafka;
using KafkaTx.Testing.Shared;
using KafkaTx.Tests.Fakes;
using KafkaTx.UnitOfWork;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaTx.Tests.Health;

/// <summary>
/// The health check sees the brokers: Degraded while the producer's client reaches none, or while its initialization
/// fails or does not complete, for longer than DegradedAfterBrokersUnreachableFor; the reason says which producer,
/// since when, and the last error.
/// </summary>
public class BrokerReachabilityHealthTests
{
    private static readonly Error Refused = new(ErrorCode.Local_Transport, "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)");
    private static readonly Error AllDown = new(ErrorCode.Local_AllBrokersDown, "1/1 brokers are down");

    private static (ServiceProvider Provider, FakeClientFactory Factory, TransactionalUnitOfWork Unit) Build(TimeProvider clock, Action<KafkaTransactionsOptions>? configure = null, Action<FakeProducer>? setup = null)
    {
        var factory = new FakeClientFactory { Setup = setup };
        var services = new ServiceCollection().AddLogging();
        services.AddSingleton(clock);
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "127.0.0.1:9";
            o.TransactionalIdPrefix = "shop";
            o.InstanceId = "0";
            o.Retry.MaxAttempts = 1;
            configure?.Invoke(o);
        }).UseClientFactory(factory).AddHealthChecks();
        var provider = services.BuildServiceProvider();
        return (provider, factory, (TransactionalUnitOfWork)provider.GetRequiredService<ITransactionalUnitOfWork>());
    }

    private static async Task<HealthReportEntry> CheckAsync(IServiceProvider provider) =>
        (await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["kafkatx"];

    private static ValueTask Write(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("t", new Message<string, string> { Key = "k", Value = "v" });
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_producer_that_reaches_no_broker_is_Degraded_after_the_threshold_naming_it_since_when_and_the_error()
    {
        var clock = new ManualClock();
        var (provider, factory, unit) = Build(clock);
        await using var _ = provider;
        factory.ErrorHandlers.Single()(Refused);
        factory.ErrorHandlers.Single()(AllDown);
        factory.ErrorHandlers.Single()(Refused);

        clock.Advance(TimeSpan.FromSeconds(14));
        (await CheckAsync(provider)).Status.Should().Be(HealthStatus.Healthy, "15 s is the default threshold");

        clock.Advance(TimeSpan.FromSeconds(2));
        var entry = await CheckAsync(provider);

        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Contain("producer 'shop-0' has reached no broker for 16 s (since ")
            .And.Contain("last error Local_Transport: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused");
        entry.Data["broker_unreachable_for_seconds"].Should().Be(16.0);
        entry.Data["broker_unreachable_since"].Should().BeOfType<string>();
        entry.Data["last_connection_error"].Should().BeOfType<string>().Which.Should().StartWith("Local_Transport: 127.0.0.1:9/bootstrap");

        await unit.ExecuteAsync(Write); // a broker answered: initialized and committed

        (await CheckAsync(provider)).Status.Should().Be(HealthStatus.Healthy);
    }

    [Fact]
    public async Task Failures_of_one_broker_while_others_answer_leave_the_producer_Healthy()
    {
        var clock = new ManualClock();
        var (provider, factory, _) = Build(clock);
        await using var __ = provider;

        factory.ErrorHandlers.Single()(new Error(ErrorCode.Local_Transport, "kafka-2:9092/2: Connect to ipv4#10.0.0.2:9092 failed: Connection refused (after 0ms in state CONNECT)"));
        clock.Advance(TimeSpan.FromMinutes(1));

        var entry = await CheckAsync(provider);
        entry.Status.Should().Be(HealthStatus.Healthy, "librdkafka did not find every broker down");
        entry.Data["last_connection_error"].Should().BeOfType<string>().Which.Should().Contain("kafka-2:9092");
    }

    [Fact]
    public async Task A_producer_whose_initialization_failed_is_Degraded_at_once_until_it_initializes()
    {
        var (provider, factory, unit) = Build(TimeProvider.System, o => o.InitTimeout = TimeSpan.FromMilliseconds(200), p =>
        {
            for (var i = 0; i < 1000; i++)
            {
                p.InitFailures.Enqueue(KafkaErrors.TimedOut());
            }

            p.OnBlockingCall = (_, timeout) => Thread.Sleep(timeout > TimeSpan.FromMilliseconds(20) ? TimeSpan.FromMilliseconds(20) : timeout);
        });
        await using var _ = provider;

        await unit.Awaiting(u => u.InitializeAsync()).Should().ThrowAsync<KafkaTransactionException>();
        var entry = await CheckAsync(provider);

        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Contain("producer 'shop-0' could not initialize: InitTransactions has not succeeded since ")
            .And.Contain("failed: Timed out waiting for operation to finish").And.Contain("the next call tries again");
        entry.Data["last_init_error"].Should().BeOfType<string>();

        factory.Current.InitFailures.Clear();
        await unit.InitializeAsync();
        (await CheckAsync(provider)).Status.Should().Be(HealthStatus.Healthy);
    }

    [Fact]
    public async Task A_producer_initializing_for_longer_than_the_threshold_is_Degraded()
    {
        var clock = new ManualClock();
        using var release = new ManualResetEventSlim();
        using var initRunning = new SemaphoreSlim(0);
        var (provider, _, unit) = Build(clock, setup: p => p.OnBlockingCall = (call, _) =>
        {
            if (call == "Init")
            {
                initRunning.Release();
                release.Wait(TimeSpan.FromSeconds(30));
            }
        });
        await using var __ = provider;

        var initializing = unit.InitializeAsync();
        (await initRunning.WaitAsync(TimeSpan.FromSeconds(10))).Should().BeTrue();
        clock.Advance(TimeSpan.FromSeconds(10));
        (await CheckAsync(provider)).Status.Should().Be(HealthStatus.Healthy, "10 s is below the threshold");
        clock.Advance(TimeSpan.FromSeconds(6));
        var entry = await CheckAsync(provider);
        release.Set();
        await initializing;

        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Contain("producer 'shop-0' has been initializing for 16 s (since ").And.Contain("last connection error none reported");
        entry.Data["state"].Should().Be("Initializing");
        (await CheckAsync(provider)).Status.Should().Be(HealthStatus.Healthy);
    }
}
