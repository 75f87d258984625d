using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.DependencyInjection;

/// <summary>
/// InitializeOnStart initializes the chosen producers while the host starts, so that the first request pays nothing;
/// with Kafka away the host still starts (or fails, when asked to), and the log and the health check say why.
/// </summary>
public class InitializeOnStartTests
{
    private static readonly Error Refused = new(ErrorCode.Local_Transport, "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)");

    private static IHost UnreachableHost(ListLogger logger, out FakeClientFactory factory, Action<KafkaTransactionsInitializeOnStartOptions> initializeOnStart)
    {
        var fake = new FakeClientFactory();
        fake.Setup = p =>
        {
            // librdkafka's InitTransactions with no broker: each slice times out (retriable) while the client reports why.
            for (var i = 0; i < 10_000; i++)
            {
                p.InitFailures.Enqueue(KafkaErrors.TimedOut());
            }

            p.OnBlockingCall = (_, timeout) =>
            {
                fake.ErrorHandlers[^1](Refused);
                Thread.Sleep(timeout > TimeSpan.FromMilliseconds(20) ? TimeSpan.FromMilliseconds(20) : timeout);
            };
        };
        factory = fake;
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders().AddProvider(new ListLoggerProvider(logger));
        builder.Services.AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "127.0.0.1:9";
                o.TransactionalIdPrefix = "shop";
                o.InstanceId = "0";
                o.Retry.MaxAttempts = 1;
            })
            .UseClientFactory(fake)
            .AddHealthChecks()
            .InitializeOnStart(initializeOnStart);
        return builder.Build();
    }

    private static ValueTask Write(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("orders", new Message<string, string> { Key = "k", Value = "v" });
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task The_chosen_producers_are_initialized_when_the_host_starts_before_any_call()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddKafkaTransactions("orders", o =>
            {
                o.BootstrapServers = "in-memory";
                o.TransactionalIdPrefix = "orders-api";
                o.InstanceId = "0";
            })
            .UseInMemoryKafka()
            .InitializeOnStart();
        builder.Services.AddKafkaTransactions("audit", o =>
        {
            o.BootstrapServers = "in-memory";
            o.TransactionalIdPrefix = "audit-api";
            o.InstanceId = "0";
        });
        using var host = builder.Build();

        await host.StartAsync();

        host.Services.GetRequiredKeyedService<ITransactionalUnitOfWork>("orders").State.Should().Be(TransactionState.Ready, "the host's start initialized it");
        host.Services.GetRequiredKeyedService<ITransactionalUnitOfWork>("audit").State.Should().Be(TransactionState.Uninitialized, "it did not ask for it");
        await host.StopAsync();
    }

    [Fact]
    public async Task With_no_broker_the_host_starts_within_the_timeout_logs_why_and_reports_Degraded_and_a_call_retries()
    {
        var logger = new ListLogger();
        using var host = UnreachableHost(logger, out var factory, o => o.Timeout = TimeSpan.FromMilliseconds(300));

        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(15));

        var notInitialized = logger.Entries.Should().ContainSingle(e => e.Id.Id == 173).Which;
        notInitialized.Level.Should().Be(LogLevel.Warning);
        notInitialized.Message.Should().Be(
            "Producer (default) (shop-0) could not initialize within 0.3 s of the start: Local_Transport: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT). " +
            "The application starts anyway; requests will retry initialization, and the health check reports the producer meanwhile");
        var unit = host.Services.GetRequiredService<ITransactionalUnitOfWork>();
        unit.State.Should().Be(TransactionState.Uninitialized);
        var health = (await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["kafkatx"];
        health.Status.Should().Be(HealthStatus.Degraded);
        health.Description.Should().Contain("producer 'shop-0' could not initialize").And.Contain("did not complete within the 0.3 s InitializeOnStart waited: Local_Transport");

        factory.Current.InitFailures.Clear(); // the broker is back
        factory.Current.OnBlockingCall = null;
        await unit.ExecuteAsync(Write);
        unit.State.Should().Be(TransactionState.Ready);
        (await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["kafkatx"].Status.Should().Be(HealthStatus.Healthy);
        await host.StopAsync();
    }

    [Fact]
    public async Task A_producer_refused_by_the_broker_at_start_is_logged_with_the_refusal_and_the_host_starts()
    {
        var logger = new ListLogger();
        using var host = UnreachableHost(logger, out var factory, o => o.Timeout = TimeSpan.FromSeconds(10));
        factory.Setup = p => p.InitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.TransactionalIdAuthorizationFailed));

        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(15));

        logger.Entries.Should().ContainSingle(e => e.Id.Id == 173).Which.Message.Should().Contain("could not initialize within 10 s of the start")
            .And.Contain("ACLs", "a refusal says more than the connection's state");
        host.Services.GetRequiredService<ITransactionalUnitOfWork>().State.Should().Be(TransactionState.Faulted);
        (await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["kafkatx"].Status.Should().Be(HealthStatus.Unhealthy);
        await host.StopAsync();
    }

    [Fact]
    public async Task FailStartIfNotInitialized_fails_the_start_with_the_reason()
    {
        using var host = UnreachableHost(new ListLogger(), out _, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(300);
            o.FailStartIfNotInitialized = true;
        });

        var failure = await host.Awaiting(h => h.StartAsync().WaitAsync(TimeSpan.FromSeconds(15))).Should().ThrowAsync<InvalidOperationException>();

        failure.Which.Message.Should().StartWith("Producer '(default)' (shop-0) could not initialize within 0.3 s of the start: Local_Transport: 127.0.0.1:9/bootstrap")
            .And.Contain("FailStartIfNotInitialized is set, so the application does not start");
    }

    [Fact]
    public async Task A_timeout_that_is_not_positive_is_refused_at_start_up()
    {
        using var host = UnreachableHost(new ListLogger(), out var factory, o => o.Timeout = TimeSpan.Zero);

        var failure = await host.Awaiting(h => h.StartAsync()).Should().ThrowAsync<OptionsValidationException>();

        failure.Which.Message.Should().Contain("InitializeOnStart of producer '(default)': Timeout is 00:00:00; set it to a positive duration of at most 10 minutes");
        factory.Producers.Should().BeEmpty("nothing was initialized");
    }

    private sealed class ListLoggerProvider(ListLogger logger) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => logger;

        public void Dispose()
        {
        }
    }
}
