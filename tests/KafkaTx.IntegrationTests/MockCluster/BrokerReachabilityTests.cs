using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// The real client with no broker to reach (a closed port, and librdkafka's mock cluster taken down and up again):
/// the host starts, the loss of the connection is logged once and its return once, and the health check follows.
/// </summary>
public sealed class BrokerReachabilityTests : IDisposable
{
    private const string Lost = "lost its connection to the brokers";
    private const string Restored = "is connected again";

    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    private static ValueTask Write(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("reachability", new Message<string, string> { Key = "k", Value = "v" });
        return ValueTask.CompletedTask;
    }

    private static async Task<HealthReportEntry> CheckAsync(IServiceProvider services) =>
        (await services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["kafkatx"];

    [Fact]
    public async Task A_producer_pointed_at_a_closed_port_lets_the_host_start_logs_the_loss_once_and_is_Degraded()
    {
        var logs = new CapturingLoggerProvider();
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Debug).AddProvider(logs);
        builder.Services.AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "127.0.0.1:9";
                o.TransactionalId = KafkaTxHost.UniqueName("unreachable");
            })
            .AddHealthChecks(h => h.DegradedAfterBrokersUnreachableFor = TimeSpan.FromSeconds(1))
            .InitializeOnStart(o => o.Timeout = TimeSpan.FromSeconds(2));
        using var host = builder.Build();

        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));

        logs.Entries.Should().ContainSingle(e => e.Message.Contains("could not initialize within 2 s of the start", StringComparison.Ordinal))
            .Which.Message.Should().Contain("127.0.0.1:9").And.Contain("Connection refused").And.Contain("requests will retry initialization");
        var entry = await Eventually.Until(
            () => CheckAsync(host.Services).GetAwaiter().GetResult(),
            e => e.Description?.Contains("has reached no broker", StringComparison.Ordinal) == true,
            TimeSpan.FromSeconds(30),
            "the health check reports that no broker answers",
            e => $"{e.Status}: {e.Description}");
        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Contain("Connection refused");

        // librdkafka keeps trying several times a second: wait for repeats, then count what was logged above Debug.
        await Eventually.Until(() => logs.Entries.Count(e => e.Message.Contains("is still not connected", StringComparison.Ordinal)) >= 5, TimeSpan.FromSeconds(30), "repeated connection failures");
        var entries = logs.Entries.ToList();
        entries.Where(e => e.Message.Contains(Lost, StringComparison.Ordinal)).Should().ContainSingle()
            .Which.Level.Should().Be(LogLevel.Warning);
        entries.Where(e => e.Level >= LogLevel.Error).Should().BeEmpty("librdkafka's FAIL lines repeat the error, which is logged once");
        entries.Where(e => e.Level == LogLevel.Warning && !e.Message.StartsWith("Health check ", StringComparison.Ordinal))
            .Should().HaveCount(2, "KafkaTx warned of the lost connection and of the producer not initialized on start, nothing more");
        await host.StopAsync();
    }

    [Fact]
    public async Task A_cluster_that_goes_down_and_comes_back_is_logged_once_each_way_and_the_health_check_follows()
    {
        _cluster.CreateTopic("reachability");
        var logs = new CapturingLoggerProvider();
        var services = new ServiceCollection();
        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Debug).AddProvider(logs));
        services.AddKafkaTransactions(o =>
            {
                o.BootstrapServers = _cluster.BootstrapServers;
                o.TransactionalId = KafkaTxHost.UniqueName("reachability");
            })
            .AddHealthChecks(h => h.DegradedAfterBrokersUnreachableFor = TimeSpan.FromSeconds(1));
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.ExecuteAsync(Write);
        (await CheckAsync(provider)).Status.Should().Be(HealthStatus.Healthy);

        _cluster.SetAllBrokersDown();
        var down = await Eventually.Until(
            () => CheckAsync(provider).GetAwaiter().GetResult(),
            e => e.Status == HealthStatus.Degraded,
            TimeSpan.FromSeconds(60),
            "Degraded while every broker is down",
            e => $"{e.Status}: {e.Description}");
        down.Description.Should().Contain("has reached no broker for");

        _cluster.SetAllBrokersUp();
        await Eventually.Until(
            () =>
            {
                try
                {
                    unit.ExecuteAsync(Write).GetAwaiter().GetResult();
                    return true;
                }
                catch (KafkaTransactionException)
                {
                    return false; // the client has not reconnected yet
                }
            },
            TimeSpan.FromSeconds(60),
            "a transaction commits once the brokers are back");

        (await CheckAsync(provider)).Status.Should().Be(HealthStatus.Healthy);
        var entries = logs.Entries.ToList();
        entries.Where(e => e.Message.Contains("producer " + unit.TransactionalId + " " + Lost, StringComparison.Ordinal)).Should().ContainSingle();
        entries.Where(e => e.Message.Contains("producer " + unit.TransactionalId + " " + Restored, StringComparison.Ordinal)).Should().ContainSingle()
            .Which.Level.Should().Be(LogLevel.Information);
        entries.Where(e => e.Level >= LogLevel.Error && e.Message.Contains("FAIL", StringComparison.Ordinal)).Should().BeEmpty();
    }
}
