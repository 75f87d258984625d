using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;
using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// A processor killed with SIGKILL and restarted at once with the same transactional.id. With static membership
/// (the default) the restarted instance takes its partitions back at once; without it, the group waits for the
/// dead member's session to time out (45 s by default; a run on Kafka 2.4 measured 42.8 s to the next commit).
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerRestartTests(KafkaBrokerFixture broker, ITestOutputHelper output)
{
    private const int Seeded = 3_000;
    private const int AfterRestart = 200;

    [SkippableFact]
    public async Task RealBroker_a_killed_processor_restarted_at_once_commits_again_before_its_session_times_out_and_copies_exactly_once()
    {
        var servers = broker.RequireBroker();
        var (input, copied) = (await broker.CreateTopicsAsync(3, "restart-input", "restart-output")) is var names ? (names[0], names[1]) : default;
        var group = "restart-copiers-" + Guid.NewGuid().ToString("N");
        var transactionalId = KafkaTxHost.UniqueName("copier");
        TopicWriter.Seed(servers, input, 0, Seeded);

        var settings = new CopierSettings(servers, input, copied, group, transactionalId);
        await using (var first = ProcessCopier.Start(settings))
        {
            await first.WaitForLineAsync(l => l.StartsWith("committed", StringComparison.Ordinal), TimeSpan.FromSeconds(90));
            await first.KillAsync();
        }

        var restartedAt = DateTime.UtcNow;
        await using var second = ProcessCopier.Start(settings);
        TopicWriter.Seed(servers, input, Seeded, AfterRestart); // so that the restarted instance has work whatever the first one did
        var committedAt = await second.WaitForLineAsync(l => l.StartsWith("committed", StringComparison.Ordinal), TimeSpan.FromSeconds(90));
        var toNextCommit = committedAt - restartedAt;
        output.WriteLine($"SIGKILL, immediate restart: next commit after {toNextCommit.TotalSeconds:F1} s (session.timeout.ms 45 s).");

        // Well inside the session timeout: the restarted static member did not wait for the dead one to expire.
        toNextCommit.Should().BeLessThan(TimeSpan.FromSeconds(20), second.Output);

        var total = Seeded + AfterRestart;
        await Eventually.Until(() => TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, TimeSpan.FromSeconds(30), copied).Count >= total, TimeSpan.FromSeconds(120), "every record is copied");
        var values = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, TimeSpan.FromSeconds(30), copied).Select(r => r.Value).ToList();
        values.Should().HaveCount(total, "nothing is copied twice, though the first copier died mid-transaction");
        values.Should().OnlyHaveUniqueItems();
    }
}
