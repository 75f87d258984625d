using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.Reliability;

/// <summary>
/// The crash harness (tests/KafkaTx.Reliability), run short: CI's proof that exactly once survives kills and a paused
/// zombie, and graceful stops that land while a handler awaits a call with its cancellation token.
/// </summary>
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

    /// <summary>
    /// Issue 15: a graceful stop while the handler awaits with its token must lose nothing, write nothing twice, and
    /// (split handler: two output records per input record) commit no half of a record's work. Each stop is the
    /// host's StopAsync, sent once a handler has entered its awaited call; the copier restarts after each.
    /// </summary>
    [Theory]
    [InlineData("split")]
    [InlineData("await")]
    public async Task Copying_through_graceful_stops_while_the_handler_awaits_with_its_token_on_the_in_memory_Kafka_is_exactly_once(string handlerName)
    {
        var handler = HandlerShapes.Parse(handlerName);
        await using var backend = new InMemoryCopierBackend();
        var log = new StringWriter();
        var options = new StopOptions { Records = 1_200, Partitions = 4, Stops = 3, Handler = handler, Seed = 2026, Deadline = TimeSpan.FromSeconds(60) };

        var report = await new StopHarness(backend, options, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.Stops.Should().HaveCount(3, log.ToString());
        report.StopsDuringAwait.Should().Be(3, "every stop must land while a handler awaits its call with its token, or the run proves nothing");
        report.StopsEndedCleanly.Should().Be(3, "a graceful stop ends the processor Stopped, exit code 0");
        report.RestartToCommit.Should().HaveCount(3).And.OnlyContain(t => t < TimeSpan.FromSeconds(10));
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.HalfDone.Should().Be(0, "no handler's half-done work is committed");
        report.PartitionsOutOfOrder.Should().Be(0, log.ToString());
        report.OutputRecords.Should().Be(1_200 * handler.OutputsPerRecord());
        report.PartitionsFullyCommitted.Should().Be(4);
        report.Passed.Should().BeTrue(log.ToString());
    }
}
