using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.Reliability;

/// <summary>
/// The crash and stop harnesses with concurrent handling (issue 17): MaxConcurrency 8, key order, 16 keys per input
/// partition, a handler awaiting a random 0 to 2 ms with its token so that handlers of different keys overtake each
/// other. The verdict checks each key's order (not each partition's), no duplicate, no loss. While the processor
/// still handles one record at a time these hold trivially; they are what concurrent handling must keep. And the
/// batch handler (<c>--batch-handler</c>: a transaction's records in one call) through the same kills.
/// </summary>
public sealed class ConcurrentCopyHarnessTests(ITestOutputHelper output)
{
    private static readonly CopyConcurrency KeyOrder = new(MaxConcurrency: 8, Order: ProcessingOrder.Key, Keys: 16);

    [Fact]
    public async Task Copying_concurrently_in_key_order_through_kills_and_a_paused_zombie_on_the_in_memory_Kafka_is_exactly_once_and_ordered_per_key()
    {
        await using var backend = new InMemoryCopierBackend();
        var log = new StringWriter();
        var options = new CrashOptions
        {
            Records = 3_000,
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
        report.OrderChecked.Should().Be(CheckedOrder.Key);
        report.KilledAt.Should().HaveCount(2, log.ToString());
        report.Zombie.Should().Be(new CopierEnd("Fenced", 1), "the resumed zombie is fenced and stops its application with exit code 1");
        report.OutputRecords.Should().Be(3_000, log.ToString());
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.KeysOutOfOrder.Should().Be(0, "each key's records must come out in input-offset order: " + log);
        report.PartitionsFullyCommitted.Should().Be(3);
        report.ExactlyOnce.Should().BeTrue(log.ToString());
        log.ToString().Should().Contain("concurrency:             MaxConcurrency 8, order key, 16 keys per partition; order checked per key");
    }

    [Fact]
    public async Task Copying_concurrently_in_key_order_through_graceful_stops_while_handlers_await_on_the_in_memory_Kafka_is_exactly_once_and_ordered_per_key()
    {
        await using var backend = new InMemoryCopierBackend();
        var log = new StringWriter();
        var options = new StopOptions
        {
            Records = 1_200,
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
        report.OrderChecked.Should().Be(CheckedOrder.Key);
        report.Stops.Should().HaveCount(3, log.ToString());
        report.StopsDuringAwait.Should().Be(3, "every stop must land while a handler awaits its call with its token, or the run proves nothing");
        report.StopsEndedCleanly.Should().Be(3, "a graceful stop ends the processor Stopped, exit code 0");
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.HalfDone.Should().Be(0, "no handler's half-done work is committed");
        report.KeysOutOfOrder.Should().Be(0, log.ToString());
        report.OutputRecords.Should().Be(1_200 * 2);
        report.PartitionsFullyCommitted.Should().Be(4);
        report.Passed.Should().BeTrue(log.ToString());
    }

    [Theory]
    [InlineData("partition")]
    [InlineData("unordered")]
    public async Task Copying_concurrently_through_kills_in_the_other_orders_on_the_in_memory_Kafka_is_exactly_once(string order)
    {
        await using var backend = new InMemoryCopierBackend();
        var log = new StringWriter();
        var concurrency = new CopyConcurrency(8, ProcessingOrders.Parse(order), Keys: 1);
        var options = new CrashOptions
        {
            Records = 2_000,
            Partitions = 4,
            Kills = 1,
            PausedZombie = false,
            Seed = 2026,
            Handler = HandlerShape.Await,
            HandlerDelay = TimeSpan.FromMilliseconds(2),
            RandomDelay = true,
            Concurrency = concurrency,
            Deadline = TimeSpan.FromSeconds(60),
        };

        var report = await new CrashHarness(backend, options, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.OrderChecked.Should().Be(order == "unordered" ? CheckedOrder.None : CheckedOrder.Partition);
        report.OutputRecords.Should().Be(2_000, log.ToString());
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.ExactlyOnce.Should().BeTrue(log.ToString());
    }

    [Fact]
    public async Task Copying_with_a_batch_handler_through_kills_and_a_paused_zombie_on_the_in_memory_Kafka_is_exactly_once_and_ordered()
    {
        await using var backend = new InMemoryCopierBackend();
        var log = new StringWriter();
        var options = new CrashOptions
        {
            Records = 3_000,
            Partitions = 3,
            Kills = 2,
            Seed = 2026,
            Handler = HandlerShape.Await,
            HandlerDelay = TimeSpan.FromMilliseconds(1),
            Concurrency = new CopyConcurrency(BatchHandler: true),
            Deadline = TimeSpan.FromSeconds(60),
        };

        var report = await new CrashHarness(backend, options, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.KilledAt.Should().HaveCount(2, log.ToString());
        report.Zombie.Should().Be(new CopierEnd("Fenced", 1), "the zombie, paused inside a batch call, is fenced when it resumes");
        report.OutputRecords.Should().Be(3_000, log.ToString());
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.PartitionsOutOfOrder.Should().Be(0, log.ToString());
        report.PartitionsFullyCommitted.Should().Be(3);
        report.ExactlyOnce.Should().BeTrue(log.ToString());
        log.ToString().Should().Contain("concurrency:             batch handler (a transaction's records in one call), 1 key per partition; order checked per partition");
    }
}
