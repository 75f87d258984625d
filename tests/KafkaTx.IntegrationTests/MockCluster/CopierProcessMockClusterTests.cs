using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// The crash tests' copier (KafkaTx.Reliability) as a real child process over the real client, on librdkafka's mock
/// cluster, which the child reaches over loopback. The mock emulates neither read_committed nor fencing, so what is
/// proven here is the plumbing: the child copies, reports its commits, and dies at once when killed. Exactly-once
/// through the kill is proven on a real broker (RealBrokerRestartTests) and in memory.
/// </summary>
public sealed class CopierProcessMockClusterTests
{
    [Fact]
    public async Task The_copier_child_process_copies_every_record_reports_its_commits_and_dies_when_killed()
    {
        using var cluster = new MockKafkaCluster();
        TopicWriter.Seed(cluster.BootstrapServers, "copy-in", 0, 500);

        await using var copier = CopierProcess.Start(cluster.BootstrapServers, "copy-in", "copy-out", "copiers", "copier-0");
        await copier.WaitForLineAsync(l => l.StartsWith("committed", StringComparison.Ordinal) && l.EndsWith(" 500", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

        var copied = TopicReader.ReadAll(cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(20), "copy-out");
        copied.Select(r => r.Value).Should().HaveCount(500).And.OnlyHaveUniqueItems();

        copier.Kill();
        (await copier.WaitForExitAsync(TimeSpan.FromSeconds(10))).Should().NotBe(0, "SIGKILL ends the process at once, without a clean exit");
    }
}
