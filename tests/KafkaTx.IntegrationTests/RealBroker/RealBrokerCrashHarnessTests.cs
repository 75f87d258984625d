using KafkaTx.Reliability.Crash;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>The crash harness against a real broker: copier child processes killed with SIGKILL, one paused with SIGSTOP while a replacement takes over.</summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerCrashHarnessTests(KafkaBrokerFixture broker, ITestOutputHelper output)
{
    [SkippableFact]
    public async Task RealBroker_copying_through_three_kills_and_a_paused_zombie_is_exactly_once()
    {
        var servers = broker.RequireBroker();
        await using var backend = new BrokerCopierBackend(servers);
        var log = new StringWriter();

        var report = await new CrashHarness(backend, new CrashOptions { Records = 20_000, Partitions = 3, Kills = 3, Seed = 2026, Deadline = TimeSpan.FromMinutes(3) }, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.KilledAt.Should().HaveCount(3, log.ToString());
        report.RestartToCommit.Should().HaveCount(3).And.OnlyContain(t => t < TimeSpan.FromSeconds(20), "static membership: no wait for the dead member's session timeout (45 s)");
        report.Zombie.Should().NotBeNull();
        report.Zombie!.State.Should().Be("Fenced", log.ToString());
        report.Zombie.ExitCode.Should().Be(1);
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.PartitionsOutOfOrder.Should().Be(0);
        report.PartitionsFullyCommitted.Should().Be(3);
        report.ExactlyOnce.Should().BeTrue(log.ToString());
    }
}
