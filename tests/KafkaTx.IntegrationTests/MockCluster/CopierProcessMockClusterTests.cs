using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;
using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// The crash harness's copier (KafkaTx.Reliability) as a real child process over the real client, on librdkafka's
/// mock cluster, which the child reaches over loopback. The mock emulates neither read_committed, nor fencing, nor
/// stored transactional offsets, so what is proven here is the plumbing the harness relies on: the child copies and
/// reports its commits, SIGSTOP freezes it, SIGCONT resumes it, SIGTERM stops it cleanly, SIGKILL at once. Exactly
/// once through kills is proven on a real broker (RealBrokerRestartTests, the crash command) and in memory.
/// </summary>
public sealed class CopierProcessMockClusterTests
{
    [Fact]
    public async Task The_copier_child_process_copies_reports_commits_pauses_resumes_and_stops_on_SIGTERM()
    {
        using var cluster = new MockKafkaCluster();
        TopicWriter.Seed(cluster.BootstrapServers, "copy-in", 0, 500);

        await using var copier = ProcessCopier.Start(new CopierSettings(cluster.BootstrapServers, "copy-in", "copy-out", "copiers", "copier-0"));
        await copier.WaitForLineAsync(l => l.StartsWith("committed", StringComparison.Ordinal) && l.EndsWith(" 500", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        copier.FirstCommitAt.Should().NotBeNull();
        copier.CommittedRecords.Should().Be(500);
        TopicReader.ReadAll(cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(20), "copy-out")
            .Select(r => r.Value).Should().HaveCount(500).And.OnlyHaveUniqueItems();

        copier.Pause();
        await Eventually.Until(() => ProcessState(copier.ProcessId) == 'T', TimeSpan.FromSeconds(10), "SIGSTOP stops the process");
        copier.Resume();
        await Eventually.Until(() => ProcessState(copier.ProcessId) != 'T', TimeSpan.FromSeconds(10), "SIGCONT resumes it");

        await copier.StopAsync();
        (await copier.WaitForEndAsync(TimeSpan.FromSeconds(10))).Should().Be(new CopierEnd("Stopped", 0), "SIGTERM stops the host, and the processor with it");
    }

    [Fact]
    public async Task A_killed_copier_dies_at_once_without_a_clean_exit()
    {
        using var cluster = new MockKafkaCluster();
        TopicWriter.Seed(cluster.BootstrapServers, "kill-in", 0, 100);
        await using var copier = ProcessCopier.Start(new CopierSettings(cluster.BootstrapServers, "kill-in", "kill-out", "killed", "killed-0"));
        await copier.WaitForLineAsync(l => l.StartsWith("committed", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

        await copier.KillAsync();

        var end = await copier.WaitForEndAsync(TimeSpan.FromSeconds(10));
        end.ExitCode.Should().NotBe(0);
        end.State.Should().Be("(no final state printed)", "SIGKILL leaves no time for anything");
    }

    /// <summary>The state letter of /proc/PID/stat: T when stopped by a signal.</summary>
    private static char ProcessState(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[stat.LastIndexOf(')') + 2];
    }
}
