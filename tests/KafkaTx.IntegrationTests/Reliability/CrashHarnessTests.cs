using KafkaTx.Reliability.Crash;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.Reliability;

/// <summary>The crash harness (tests/KafkaTx.Reliability), run short: CI's proof that exactly once survives kills and a paused zombie.</summary>
public sealed class CrashHarnessTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Copying_through_kills_and_a_paused_zombie_on_the_in_memory_Kafka_is_exactly_once()
    {
        await using var backend = new InMemoryCopierBackend();
        var log = new StringWriter();

        var report = await new CrashHarness(backend, new CrashOptions { Records = 24_000, Partitions = 4, Kills = 3, Seed = 2026, Deadline = TimeSpan.FromSeconds(60) }, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.KilledAt.Should().HaveCount(3);
        report.RestartToCommit.Should().HaveCount(3).And.OnlyContain(t => t < TimeSpan.FromSeconds(10), "a restarted static member takes its partitions back at once");
        report.Zombie.Should().Be(new CopierEnd("Fenced", 1), "the resumed zombie is fenced and stops its application with exit code 1");
        report.OutputRecords.Should().Be(24_000);
        report.Duplicates.Should().Be(0);
        report.Losses.Should().Be(0);
        report.PartitionsOutOfOrder.Should().Be(0);
        report.PartitionsFullyCommitted.Should().Be(4);
        report.ExactlyOnce.Should().BeTrue();
    }
}
