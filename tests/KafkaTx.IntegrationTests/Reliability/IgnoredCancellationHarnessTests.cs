using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.Reliability;

/// <summary>
/// The stop and crash harnesses with concurrent handling and a handler that ignores its token for some records
/// (<c>--ignore-cancellation</c>): one call in 25 waits 1 s whatever its token says, and the copier's ShutdownTimeout
/// is 200 ms, so stops, revokes and failed batches abandon those calls. Still no duplicate, no loss, each key in order.
/// </summary>
public sealed class IgnoredCancellationHarnessTests(ITestOutputHelper output)
{
    private static readonly CopyConcurrency KeyOrder = new(MaxConcurrency: 8, Order: ProcessingOrder.Key, Keys: 16, IgnoreCancellationEvery: 25);

    [Fact]
    public async Task Graceful_stops_with_handlers_that_ignore_their_token_on_the_in_memory_Kafka_are_exactly_once_and_ordered_per_key()
    {
        await using var backend = new InMemoryCopierBackend();
        var log = new StringWriter();
        var options = new StopOptions
        {
            Records = 800,
            Partitions = 4,
            Stops = 3,
            Handler = HandlerShape.Split,
            HandlerDelay = TimeSpan.FromMilliseconds(2),
            RandomDelay = true,
            Concurrency = KeyOrder,
            Seed = 2026,
            Deadline = TimeSpan.FromSeconds(60),
        };

        var report = await new StopHarness(backend, options, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.StopsEndedCleanly.Should().Be(3, "a stop that abandons a call still ends the processor Stopped, exit code 0");
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.HalfDone.Should().Be(0, "an abandoned call's second write is refused, its first aborted");
        report.KeysOutOfOrder.Should().Be(0, log.ToString());
        report.Passed.Should().BeTrue(log.ToString());
        log.ToString().Should().Contain("one call in 25 ignores its token for 1 s (ShutdownTimeout 200 ms)");
    }

    [Fact]
    public async Task Kills_and_a_paused_zombie_with_handlers_that_ignore_their_token_on_the_in_memory_Kafka_are_exactly_once_and_ordered_per_key()
    {
        await using var backend = new InMemoryCopierBackend();
        var log = new StringWriter();
        var options = new CrashOptions
        {
            Records = 1_200,
            Partitions = 3,
            Kills = 2,
            Seed = 2026,
            Handler = HandlerShape.Await,
            HandlerDelay = TimeSpan.FromMilliseconds(2),
            RandomDelay = true,
            Concurrency = KeyOrder,
            Deadline = TimeSpan.FromSeconds(60),
        };

        var report = await new CrashHarness(backend, options, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.KeysOutOfOrder.Should().Be(0, log.ToString());
        report.ExactlyOnce.Should().BeTrue(log.ToString());
    }
}
