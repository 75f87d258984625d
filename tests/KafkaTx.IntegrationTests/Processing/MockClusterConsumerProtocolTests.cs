using Confluent.Kafka;
using KafkaTx.IntegrationTests.MockCluster;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.Processing;

/// <summary>
/// The processor with <see cref="GroupProtocol.Consumer"/> (KIP-848) on librdkafka's mock cluster, which speaks
/// ConsumerGroupHeartbeat (API 68) since librdkafka 2.12: the real client's consumer-protocol paths, with injected
/// errors. The mock keeps no transactional offsets and shows aborted records; exactly-once with the consumer protocol
/// is proven against a real broker (RealBrokerConsumerProtocolTests).
/// </summary>
public sealed class MockClusterConsumerProtocolTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    private static void ConsumerProtocol(TransactionalProcessorOptions options)
    {
        options.GroupProtocol = GroupProtocol.Consumer;
        options.MaxBatchSize = 10;
    }

    [Fact]
    public async Task A_processor_on_the_consumer_protocol_starts_and_copies_every_record()
    {
        _cluster.CreateTopic("kip848-in", 2);
        ProcessorHost.Seed(_cluster.BootstrapServers, "kip848-in", partitions: 2, perPartition: 50);
        var script = new CopyScript { OutputTopic = "kip848-out" };
        await using var host = new ProcessorHost(_cluster.BootstrapServers, "0", "kip848-in", "kip848-group", script, ConsumerProtocol);

        await host.StartAsync();
        await Eventually.Until(() => script.Handled.Count == 100 && host.Processor.CommittedRecords == 100, Deadline, "all 100 records are committed");

        host.Processor.State.Should().Be(ProcessorState.Running);
        var output = TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, Deadline, "kip848-out");
        output.Select(r => r.Value).Should().OnlyHaveUniqueItems().And.HaveCount(100);
    }

    [Fact]
    public async Task A_static_member_refused_with_UNRELEASED_INSTANCE_ID_joins_again_and_copies()
    {
        // librdkafka makes the refusal a fatal consumer error; the processor replaces its consumer and joins again.
        _cluster.CreateTopic("unreleased-in", 1);
        ProcessorHost.Seed(_cluster.BootstrapServers, "unreleased-in", partitions: 1, perPartition: 20);
        var script = new CopyScript { OutputTopic = "unreleased-out" };
        await using var host = new ProcessorHost(_cluster.BootstrapServers, "0", "unreleased-in", "unreleased-group", script, ConsumerProtocol);
        _cluster.PushRequestErrors(KafkaApi.ConsumerGroupHeartbeat, ErrorCode.UnreleasedInstanceId, ErrorCode.UnreleasedInstanceId);

        await host.StartAsync();
        await Eventually.Until(() => host.Processor.CommittedRecords == 20 || host.Processor.State is ProcessorState.Faulted or ProcessorState.Fenced, Deadline, "the records are committed");

        host.Processor.State.Should().Be(ProcessorState.Running, host.Processor.Failure?.ToString());
        host.Processor.CommittedRecords.Should().Be(20);
        host.Logs.Entries.Should().Contain(e => e.Message.Contains("UNRELEASED_INSTANCE_ID", StringComparison.Ordinal), "the refusals reached the processor");
    }

    [Theory]
    [InlineData(ErrorCode.StaleMemberEpoch)]
    [InlineData(ErrorCode.FencedMemberEpoch)]
    [InlineData(ErrorCode.UnknownMemberId)]
    [InlineData(ErrorCode.IllegalGeneration)]
    public async Task Offsets_refused_for_stale_group_metadata_abort_rewind_and_commit_on_the_next_try(ErrorCode error)
    {
        var input = KafkaTxHost.UniqueName("stale-in");
        _cluster.CreateTopic(input, 1);
        ProcessorHost.Seed(_cluster.BootstrapServers, input, partitions: 1, perPartition: 10);
        var script = new CopyScript { OutputTopic = input + "-out" };
        await using var host = new ProcessorHost(_cluster.BootstrapServers, "0", input, input + "-group", script, ConsumerProtocol);
        _cluster.PushRequestErrors(KafkaApi.TxnOffsetCommit, error);

        await host.StartAsync();
        await Eventually.Until(() => host.Processor.CommittedRecords >= 10 || host.Processor.State is ProcessorState.Faulted or ProcessorState.Fenced, Deadline, "the records are committed after the abort");

        host.Processor.State.Should().Be(ProcessorState.Running, host.Processor.Failure?.ToString());
        script.Handled.Values.Should().OnlyContain(n => n >= 2, "every record of the aborted transaction was processed again");
        host.Logs.Entries.Should().Contain(e => e.Message.Contains("rewound to the committed offsets", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_second_instance_joining_takes_partitions_incrementally_and_both_process()
    {
        _cluster.CreateTopic("kip848-shared-in", 4);
        ProcessorHost.Seed(_cluster.BootstrapServers, "kip848-shared-in", partitions: 4, perPartition: 25);
        var first = new CopyScript { OutputTopic = "kip848-shared-out" };
        var second = new CopyScript { OutputTopic = "kip848-shared-out" };

        await using var one = new ProcessorHost(_cluster.BootstrapServers, "0", "kip848-shared-in", "kip848-shared-group", first, ConsumerProtocol);
        await one.StartAsync();
        await Eventually.Until(() => one.Processor.CommittedRecords > 0, Deadline, "the first instance commits");

        ProcessorHost.Seed(_cluster.BootstrapServers, "kip848-shared-in", partitions: 4, perPartition: 25);
        await using var two = new ProcessorHost(_cluster.BootstrapServers, "1", "kip848-shared-in", "kip848-shared-group", second, ConsumerProtocol);
        await two.StartAsync();
        await Eventually.Until(() => !second.Handled.IsEmpty, Deadline, "the second instance processes its partitions");
        await Eventually.Until(() => one.Processor.CommittedRecords + two.Processor.CommittedRecords >= 200, Deadline, "every record is committed");

        one.Processor.State.Should().Be(ProcessorState.Running);
        two.Processor.State.Should().Be(ProcessorState.Running);
        one.Logs.Entries.Should().NotContain(e => e.Message.Contains("partitions lost", StringComparison.Ordinal));
    }
}
