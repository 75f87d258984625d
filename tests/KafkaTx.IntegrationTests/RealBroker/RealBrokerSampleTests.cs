using KafkaTx.IntegrationTests.Samples;
using KafkaTx.IntegrationTests.Support;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// The samples as users run them against a real broker. AtomicMultiTopicWrites aborts a transaction right after
/// producing two records, the race behind confluentinc/librdkafka#4849 (INVALID_TXN_STATE, fatal, on the abort): on
/// Kafka 2.4 it crashed one run in five before KafkaTx replaced the producer instead of failing.
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerSampleTests(KafkaBrokerFixture broker, ITestOutputHelper output)
{
    [SkippableFact]
    public async Task RealBroker_AtomicMultiTopicWrites_finds_the_writes_atomic_and_never_dies_of_a_fatal_abort_in_five_runs()
    {
        var servers = broker.RequireBroker();
        for (var run = 1; run <= 5; run++)
        {
            var (exitCode, text) = await SampleTests.RunSampleAsync("AtomicMultiTopicWrites", "--bootstrap-servers", servers);
            output.WriteLine($"run {run}: exit {exitCode}");

            text.Should().NotContain("Unhandled exception", $"run {run}");
            text.Should().Contain("its transaction was aborted", $"run {run}");
            text.Should().Contain("Verdict: atomic.", $"run {run}");
            exitCode.Should().Be(0, text);
        }
    }

    [SkippableFact]
    public async Task RealBroker_ConsumeTransformProduce_is_exactly_once()
    {
        var servers = broker.RequireBroker();

        var (exitCode, text) = await SampleTests.RunSampleAsync("ConsumeTransformProduce", "--bootstrap-servers", servers);

        text.Should().Contain("Orders seen: 20 of 20; duplicates: 0.");
        text.Should().Contain("Verdict: exactly once.");
        exitCode.Should().Be(0, text);
    }
}
