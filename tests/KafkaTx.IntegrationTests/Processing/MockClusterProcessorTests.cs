using Confluent.Kafka;
using KafkaTx.IntegrationTests.MockCluster;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.Processing;

/// <summary>
/// The processor through the real Confluent.Kafka consumer and producer on librdkafka's mock cluster. The mock keeps
/// no transactional offsets and shows aborted records, so these tests check the loop's behaviour through the real
/// client; exactly-once is proven against a real broker (RealBrokerProcessorTests).
/// </summary>
public sealed class MockClusterProcessorTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    // Rebalances in seconds rather than librdkafka's defaults (3 s heartbeats, 45 s sessions).
    private static void FastGroup(TransactionalProcessorOptions options)
    {
        options.MaxBatchSize = 5;
        options.ConsumerSettings["heartbeat.interval.ms"] = "100";
        options.ConsumerSettings["session.timeout.ms"] = "6000";
    }

    [Fact]
    public async Task The_processor_copies_every_record_through_the_real_client()
    {
        _cluster.CreateTopic("incoming-orders", 2);
        ProcessorHost.Seed(_cluster.BootstrapServers, "incoming-orders", partitions: 2, perPartition: 50);
        var script = new CopyScript { OutputTopic = "processed-orders" };
        await using var host = new ProcessorHost(_cluster.BootstrapServers, "0", "incoming-orders", "copiers", script, o => o.MaxBatchSize = 20);

        await host.StartAsync();
        await Eventually.Until(() => script.Handled.Count == 100 && host.Processor.CommittedRecords == 100, Deadline, "all 100 records are committed");

        host.Processor.State.Should().Be(ProcessorState.Running);
        host.Processor.CommittedTransactions.Should().BeGreaterThanOrEqualTo(5);
        var output = TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, Deadline, "processed-orders");
        output.Should().HaveCount(100);
        output.Select(r => r.Value).Should().OnlyHaveUniqueItems();
        output.GroupBy(r => r.Partition).Should().AllSatisfy(p =>
            p.Select(r => long.Parse(r.Value!.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture)).Should().BeInAscendingOrder());
    }

    [Fact]
    public async Task An_injected_abortable_commit_error_aborts_rewinds_and_processes_the_records_again()
    {
        _cluster.CreateTopic("abortable-in", 1);
        ProcessorHost.Seed(_cluster.BootstrapServers, "abortable-in", partitions: 1, perPartition: 10);
        var script = new CopyScript { OutputTopic = "abortable-out" };
        await using var host = new ProcessorHost(_cluster.BootstrapServers, "0", "abortable-in", "abortable-group", script, o => o.MaxBatchSize = 10);
        _cluster.PushRequestErrors(KafkaApi.EndTxn, ErrorCode.TransactionCoordinatorFenced);

        await host.StartAsync();
        await Eventually.Until(() => host.Processor.CommittedRecords >= 10, Deadline, "the records are committed after the abort");

        host.Logs.Entries.Should().Contain(e => e.Message.Contains("the commit failed (Abortable)", StringComparison.Ordinal));
        host.Logs.Entries.Should().Contain(e => e.Message.Contains("rewound to the committed offsets", StringComparison.Ordinal));
        script.Handled.Values.Should().OnlyContain(n => n >= 2, "every record of the aborted transaction was processed again");
        host.Processor.State.Should().Be(ProcessorState.Running);
    }

    [Fact]
    public async Task An_injected_fencing_error_during_commit_stops_the_processor_for_good()
    {
        _cluster.CreateTopic("fenced-in", 1);
        ProcessorHost.Seed(_cluster.BootstrapServers, "fenced-in", partitions: 1, perPartition: 10);
        var script = new CopyScript { OutputTopic = "fenced-out" };
        await using var host = new ProcessorHost(_cluster.BootstrapServers, "0", "fenced-in", "fenced-group", script, o => o.MaxBatchSize = 5);
        _cluster.PushRequestErrors(KafkaApi.EndTxn, ErrorCode.ProducerFenced);

        await host.StartAsync();
        await Eventually.Until(() => host.Processor.State == ProcessorState.Fenced, Deadline, "the processor is fenced");

        host.Processor.Failure.Should().BeOfType<KafkaTransactionException>().Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        host.Processor.CommittedRecords.Should().Be(0);
        host.Logs.Entries.Should().Contain(e => e.Level == Microsoft.Extensions.Logging.LogLevel.Critical && e.Message.Contains("was fenced", StringComparison.Ordinal));
        var handledWhenFenced = script.Handled.Count;
        handledWhenFenced.Should().Be(5, "nothing is handled after the fencing");
    }

    [Fact]
    public async Task A_stop_while_a_handler_awaits_with_its_token_lets_it_finish_and_takes_no_new_record_through_the_real_client()
    {
        _cluster.CreateTopic("stop-in", 1);
        ProcessorHost.Seed(_cluster.BootstrapServers, "stop-in", partitions: 1, perPartition: 10);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var script = new CopyScript
        {
            OutputTopic = "stop-out",
            Await = async (origin, ct) =>
            {
                if (origin == "0:5")
                {
                    entered.TrySetResult();
                    await Task.Delay(TimeSpan.FromMilliseconds(300), ct); // a call to a service, honouring the token
                }
            },
        };
        await using var host = new ProcessorHost(_cluster.BootstrapServers, "0", "stop-in", "stop-group", script, o =>
        {
            o.MaxBatchSize = 1000;
            o.MaxBatchDuration = TimeSpan.FromSeconds(20); // one open transaction: only the stop commits it
        });

        await host.StartAsync();
        await entered.Task.WaitAsync(Deadline);
        await host.StopAsync();

        script.Cancelled.Should().Be(0, "the handler in flight finishes: its token is cancelled only when ShutdownTimeout runs out");
        host.Processor.State.Should().Be(ProcessorState.Stopped);
        host.Processor.CommittedRecords.Should().Be(6, "exactly the records whose handlers completed, 0:0 to 0:5");
        script.Handled.Keys.Should().BeEquivalentTo(Enumerable.Range(0, 6).Select(i => $"0:{i}"), "a stopping processor takes no new record");
        var output = TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, Deadline, "stop-out");
        output.Select(r => r.Value).Should().Equal(Enumerable.Range(0, 6).Select(i => $"0:{i}"));
    }

    [Theory]
    [InlineData(PartitionAssignmentStrategy.CooperativeSticky)]
    [InlineData(PartitionAssignmentStrategy.Range)]
    public async Task A_second_instance_joining_the_group_triggers_a_rebalance_and_both_process(PartitionAssignmentStrategy assignor)
    {
        _cluster.CreateTopic("shared-in", 4);
        ProcessorHost.Seed(_cluster.BootstrapServers, "shared-in", partitions: 4, perPartition: 25);
        var first = new CopyScript { OutputTopic = "shared-out" };
        var second = new CopyScript { OutputTopic = "shared-out" };
        void Configure(TransactionalProcessorOptions o)
        {
            FastGroup(o);
            o.AssignmentStrategy = assignor;
        }

        await using var one = new ProcessorHost(_cluster.BootstrapServers, "0", "shared-in", "shared-group", first, Configure);
        await one.StartAsync();
        await Eventually.Until(() => one.Processor.CommittedRecords > 0, Deadline, "the first instance commits");

        ProcessorHost.Seed(_cluster.BootstrapServers, "shared-in", partitions: 4, perPartition: 25);
        await using var two = new ProcessorHost(_cluster.BootstrapServers, "1", "shared-in", "shared-group", second, Configure);
        await two.StartAsync();
        await Eventually.Until(() => one.Logs.Entries.Any(e => e.Message.Contains("partitions revoked", StringComparison.Ordinal)), Deadline, "the first instance gives up partitions");
        await Eventually.Until(() => !second.Handled.IsEmpty, Deadline, "the second instance processes its partitions");

        one.Processor.State.Should().Be(ProcessorState.Running);
        two.Processor.State.Should().Be(ProcessorState.Running);
        one.Logs.Entries.Should().NotContain(e => e.Message.Contains("partitions lost", StringComparison.Ordinal));
    }
}
