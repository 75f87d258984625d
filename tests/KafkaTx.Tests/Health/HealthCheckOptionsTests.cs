using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.Health;

/// <summary>The health check's thresholds are named options per producer: configuration binds them, and bad values fail at start-up.</summary>
public class HealthCheckOptionsTests
{
    private static ServiceCollection Services(FakeClientFactory factory, string name, Action<KafkaTransactionsHealthCheckOptions>? health = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddKafkaTransactions(name, o =>
        {
            o.BootstrapServers = "fake:9092";
            o.TransactionalIdPrefix = "task-api";
            o.InstanceId = "0";
            o.Retry.MaxAttempts = 1;
        }).UseClientFactory(factory).AddHealthChecks(health);
        return services;
    }

    private static ValueTask Write(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("t", new Message<string, string> { Key = "k", Value = "v" });
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Thresholds_bound_from_configuration_by_the_producers_name_drive_the_check()
    {
        var factory = new FakeClientFactory();
        var services = Services(factory, "payments");
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["KafkaTx:Health:DegradedAfterFailedCommits"] = "1" })
            .Build();
        services.Configure<KafkaTransactionsHealthCheckOptions>("payments", configuration.GetSection("KafkaTx:Health"));
        await using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<IOptionsMonitor<KafkaTransactionsHealthCheckOptions>>().Get("payments")
            .DegradedAfterFailedCommits.Should().Be(1);
        provider.GetRequiredService<IOptionsMonitor<KafkaTransactionsHealthCheckOptions>>().Get(Microsoft.Extensions.Options.Options.DefaultName)
            .DegradedAfterFailedCommits.Should().Be(3, "another producer's thresholds are its own");

        var unit = provider.GetRequiredKeyedService<ITransactionalUnitOfWork>("payments");
        await unit.InitializeAsync();
        factory.Current.CommitFailures.Enqueue(KafkaErrors.Abortable());
        await unit.Awaiting(u => u.ExecuteAsync(Write)).Should().ThrowAsync<KafkaTransactionException>();

        var entry = (await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["kafkatx-payments"];
        entry.Status.Should().Be(HealthStatus.Degraded, "one failed commit reaches the threshold of 1 the configuration set");
        entry.Description.Should().Contain("1 commits in a row failed");
    }

    [Fact]
    public async Task Thresholds_that_make_no_sense_are_refused_at_start_up_each_named()
    {
        var services = Services(new FakeClientFactory(), "payments", h =>
        {
            h.DegradedAfterFailedCommits = 0;
            h.DegradedAfterProducerReplacements = -1;
            h.DegradedAfterUncommittedFor = TimeSpan.Zero;
            h.DegradedAfterBrokersUnreachableFor = TimeSpan.FromSeconds(-1);
        });
        await using var provider = services.BuildServiceProvider();

        var failure = provider.Invoking(p => p.GetRequiredService<IOptionsMonitor<KafkaTransactionsHealthCheckOptions>>().Get("payments"))
            .Should().Throw<OptionsValidationException>().Which;

        failure.Failures.Should().HaveCount(4);
        failure.Message.Should().Contain("'payments'").And.Contain("DegradedAfterFailedCommits is 0")
            .And.Contain("DegradedAfterProducerReplacements is -1").And.Contain("DegradedAfterUncommittedFor")
            .And.Contain("DegradedAfterBrokersUnreachableFor is -00:00:01; set it to a positive duration");
    }
}
