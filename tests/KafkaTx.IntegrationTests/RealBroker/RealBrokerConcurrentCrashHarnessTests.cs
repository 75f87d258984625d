using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// The crash harness against a real broker with concurrent handling (issue 17): copier child processes with
/// MaxConcurrency 8 and key order over 16 keys per input partition, killed with SIGKILL, one paused with SIGSTOP while
/// a replacement takes over; and stopped with SIGTERM while a handler awaits a call with its cancellation token. The
/// verdict checks each key's order, no duplicate, no loss. Outcomes only: no timing is asserted.
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerConcurrentCrashHarnessTests(KafkaBrokerFixture broker, ITestOutputHelper output)
{
    private static readonly CopyConcurrency KeyOrder = new(MaxConcurrency: 8, Order: ProcessingOrder.Key, Keys: 16);

    [SkippableFact]
    public async Task RealBroker_copying_concurrently_in_key_order_through_three_kills_and_a_paused_zombie_is_exactly_once_and_ordered_per_key()
    {
        var servers = broker.RequireBroker();
        await using var backend = new BrokerCopierBackend(servers);
        var log = new StringWriter();
        var options = new CrashOptions
        {
            Records = 20_000,
            Partitions = 3,
            Kills = 3,
            Seed = 2026,
            Handler = HandlerShape.Await,
            HandlerDelay = TimeSpan.FromMilliseconds(2),
            RandomDelay = true,
            Concurrency = KeyOrder,
            Deadline = TimeSpan.FromMinutes(3),
        };

        var report = await new CrashHarness(backend, options, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.OrderChecked.Should().Be(CheckedOrder.Key);
        report.KilledAt.Should().HaveCount(3, log.ToString());
        report.Zombie.Should().NotBeNull();
        report.Zombie!.State.Should().Be("Fenced", log.ToString());
        report.Zombie.ExitCode.Should().Be(1);
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.KeysOutOfOrder.Should().Be(0, log.ToString());
        report.PartitionsFullyCommitted.Should().Be(3);
        report.ExactlyOnce.Should().BeTrue(log.ToString());
    }

    [SkippableFact]
    public async Task RealBroker_copying_concurrently_in_key_order_through_SIGTERM_stops_while_handlers_await_with_their_token_is_exactly_once_and_ordered_per_key()
    {
        var servers = broker.RequireBroker();
        await using var backend = new BrokerCopierBackend(servers);
        var log = new StringWriter();
        var options = new StopOptions
        {
            Records = 15_000,
            Partitions = 3,
            Stops = 5,
            Handler = HandlerShape.Split,
            HandlerDelay = TimeSpan.FromMilliseconds(2),
            RandomDelay = true,
            Concurrency = KeyOrder,
            Seed = 2026,
            Deadline = TimeSpan.FromMinutes(3),
        };

        var report = await new StopHarness(backend, options, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.OrderChecked.Should().Be(CheckedOrder.Key);
        report.Stops.Should().HaveCount(5, log.ToString());
        report.StopsDuringAwait.Should().Be(5, "every SIGTERM must land while a handler awaits its call with its token, or the run proves nothing");
        report.Stops.Should().OnlyContain(s => s.End == new CopierEnd("Stopped", 0), "SIGTERM stops the host, and the processor with it, cleanly");
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.HalfDone.Should().Be(0, "no handler's half-done work is committed");
        report.KeysOutOfOrder.Should().Be(0, log.ToString());
        report.OutputRecords.Should().Be(report.ExpectedOutputRecords, log.ToString());
        report.PartitionsFullyCommitted.Should().Be(3, log.ToString());
        report.Passed.Should().BeTrue(log.ToString());
    }
}
