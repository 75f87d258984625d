using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaTx.Tests.Health;

/// <summary>A unit that cannot take a transaction at once (a commit outcome awaiting settlement) is Degraded, not Healthy.</summary>
public class SettlementHealthTests
{
    private static ValueTask Write(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("t", new Message<string, string> { Key = "k", Value = "v" });
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_unit_whose_commit_outcome_awaits_settlement_is_Degraded_until_its_next_call_settles_it()
    {
        var unknown = 1;
        var factory = new FakeClientFactory
        {
            Setup = p => p.OnBlockingCall = (call, _) =>
            {
                if (call == "Commit" && Volatile.Read(ref unknown) == 1)
                {
                    Thread.Sleep(5);
                    throw KafkaErrors.TimedOut();
                }
            },
        };
        var services = new ServiceCollection().AddLogging();
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "fake:9092";
            o.TransactionalIdPrefix = "task-api";
            o.InstanceId = "0";
            o.CommitTimeout = TimeSpan.FromMilliseconds(100);
        }).UseClientFactory(factory).AddHealthChecks();
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        var health = provider.GetRequiredService<HealthCheckService>();
        await unit.Awaiting(u => u.ExecuteAsync(Write)).Should().ThrowAsync<KafkaTransactionException>();

        var pending = (await health.CheckHealthAsync()).Entries["kafkatx"];
        Volatile.Write(ref unknown, 0);
        await unit.ExecuteAsync(Write);
        var settled = (await health.CheckHealthAsync()).Entries["kafkatx"];

        pending.Status.Should().Be(HealthStatus.Degraded);
        pending.Description.Should().Contain("unknown outcome");
        settled.Status.Should().Be(HealthStatus.Healthy);
    }
}
