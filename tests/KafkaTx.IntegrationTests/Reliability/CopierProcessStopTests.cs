using KafkaTx.IntegrationTests.MockCluster;
using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;

namespace KafkaTx.IntegrationTests.Reliability;

/// <summary>
/// The graceful-stop run's child-process path, on librdkafka's mock cluster over loopback: what the real-broker stop
/// run relies on, and what can be proven without a broker. The mock emulates neither read_committed nor stored
/// transactional offsets, so exactly once through the stops is proven in memory (CrashHarnessTests) and on a real
/// broker (RealBrokerCrashHarnessTests); here: a copier child armed through its standard input enters the armed
/// call, SIGTERM lands while that handler awaits, and the child shuts down through the generic host.
/// </summary>
public sealed class CopierProcessStopTests
{
    [Theory]
    [InlineData("split")]
    [InlineData("await")]
    public async Task A_copier_child_process_gets_SIGTERM_while_its_handler_awaits_and_stops_through_the_host(string handlerName)
    {
        using var cluster = new MockKafkaCluster();
        await using var backend = new BrokerCopierBackend(cluster.BootstrapServers, (topic, partitions) => cluster.CreateTopic(topic, partitions));
        await backend.CreateTopicsAsync(2, "stop-in", "stop-out");
        var settings = new CopierSettings(cluster.BootstrapServers, "stop-in", "stop-out", "stoppers", "stopper-0") { Handler = HandlerShapes.Parse(handlerName) };
        await using var copier = ProcessCopier.Start(settings);

        copier.ArmStop(150); // past the first transaction (100 records)
        backend.Seed("stop-in", 2, 0, 200);
        var record = await copier.WaitForArmedCallAsync(TimeSpan.FromSeconds(60));
        copier.ArmedAwait.Should().BeNull("the armed handler is still awaiting");
        await copier.StopAsync(); // SIGTERM, then the exit

        record.Should().MatchRegex(@"^stop-in \[[01]\] @\d+$");
        copier.FirstCommitAt.Should().NotBeNull("the armed call comes after the first transaction's 100 records");
        (await copier.WaitForEndAsync(TimeSpan.FromSeconds(10))).Should().Be(new CopierEnd("Stopped", 0), "SIGTERM stops the host, and the processor with it");
        copier.ArmedAwait.Should().NotBeNull(copier.Output);
        copier.ArmedAwait!.StopBegun.Should().BeTrue("the stop began while the handler awaited: " + copier.Output);
    }
}
