using KafkaTx.IntegrationTests.Samples;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>Issue 17's sample as users run it against a real broker: sequential and parallel, each output checked from read_committed.</summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerParallelSampleTests(KafkaBrokerFixture broker, ITestOutputHelper output)
{
    [SkippableFact]
    public async Task RealBroker_ParallelProcessing_is_exactly_once_and_in_order_per_customer_sequential_and_parallel()
    {
        var servers = broker.RequireBroker();

        var (exitCode, text) = await SampleTests.RunSampleAsync("ParallelProcessing", "--bootstrap-servers", servers, "--payments", "300");

        output.WriteLine(text);
        text.Should().Contain("sequential read_committed: 300 of 300 payments; duplicates: 0; out of order per customer: 0.");
        text.Should().Contain("parallel   read_committed: 300 of 300 payments; duplicates: 0; out of order per customer: 0.");
        text.Should().Contain("Verdict: exactly once and in order per customer, sequential and parallel.");
        exitCode.Should().Be(0, text);
    }
}
