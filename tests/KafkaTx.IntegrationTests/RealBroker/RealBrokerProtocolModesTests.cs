using System.Collections.Concurrent;
using Confluent.Kafka;
using KafkaTx.IntegrationTests.Processing;
using KafkaTx.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// The processor's batch handler and its MaxConcurrency above 1 on a real broker, with each group protocol: two
/// instances sharing a group, every record copied once and the group committed to the end. The first instance copies
/// a first wave alone; then the second joins while records keep arriving, a wave at a time, until both instances have
/// committed records since it joined: the partitions were shared out again in mid-run, whatever the broker's speed.
/// The consumer protocol (KIP-848) runs where the broker answers ConsumerGroupHeartbeat (API 68, Kafka 4.0 and later);
/// otherwise, and without a broker, the test skips with the reason. Outcomes only: read_committed output and the
/// group's offsets, no timing.
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerProtocolModesTests(KafkaBrokerFixture broker)
{
    private const int Partitions = 3;
    private const int Wave = 100; // records per partition and wave
    private const int MaxWaves = 40;
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);

    public static TheoryData<GroupProtocol> Protocols => RealBrokerProcessorTests.Protocols;

    [SkippableTheory]
    [MemberData(nameof(Protocols))]
    public async Task RealBroker_a_batch_handler_on_two_instances_copies_exactly_once_and_commits_the_group_to_the_end(GroupProtocol protocol)
    {
        var servers = await broker.RequireBrokerAsync(protocol);
        var topics = await broker.CreateTopicsAsync(Partitions, "modes-batch-in", "modes-batch-out", "modes-batch-dlt");
        var (input, output, deadLetters) = (topics[0], topics[1], topics[2]);
        var group = "modes-batchers-" + Guid.NewGuid().ToString("N");
        var script = new RealBrokerBatchHandlerTests.BatchScript(output, new HashSet<string>(), new ConcurrentQueue<int>());

        using var one = BatchHost(servers, "0", input, group, deadLetters, script, protocol);
        using var two = BatchHost(servers, "1", input, group, deadLetters, script, protocol);
        var first = one.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        var second = two.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        await one.StartAsync();
        var perPartition = await SecondJoinsMidRunAsync(servers, input, group, first, second, () => two.StartAsync());
        await two.StopAsync();
        await one.StopAsync();

        var visible = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, output);
        visible.Select(r => r.Value).Should().OnlyHaveUniqueItems("each record commits exactly once").And.HaveCount(Partitions * perPartition);
        TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, deadLetters).Should().BeEmpty();
    }

    [SkippableTheory]
    [MemberData(nameof(Protocols))]
    public async Task RealBroker_MaxConcurrency_above_one_on_two_instances_copies_exactly_once_and_commits_the_group_to_the_end(GroupProtocol protocol)
    {
        var servers = await broker.RequireBrokerAsync(protocol);
        var topics = await broker.CreateTopicsAsync(Partitions, "modes-concurrent-in", "modes-concurrent-out");
        var (input, output) = (topics[0], topics[1]);
        var group = "modes-concurrent-" + Guid.NewGuid().ToString("N");
        var script = new CopyScript { OutputTopic = output };
        void Concurrent(TransactionalProcessorOptions o)
        {
            o.GroupProtocol = protocol;
            o.MaxConcurrency = 8;
            o.MaxBatchSize = 100;
        }

        await using var one = new ProcessorHost(servers, "0", input, group, script, Concurrent);
        await using var two = new ProcessorHost(servers, "1", input, group, script, Concurrent);
        await one.StartAsync();
        var perPartition = await SecondJoinsMidRunAsync(servers, input, group, one.Processor, two.Processor, () => two.StartAsync());
        await two.StopAsync();
        await one.StopAsync();

        one.Processor.State.Should().Be(ProcessorState.Stopped);
        two.Processor.State.Should().Be(ProcessorState.Stopped);
        var visible = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, output);
        visible.Select(r => r.Value).Should().OnlyHaveUniqueItems("each record commits exactly once").And.HaveCount(Partitions * perPartition);
    }

    /// <summary>
    /// The first instance copies a first wave alone; the second then starts while waves keep coming, the next seeded
    /// as soon as both instances have committed since it started or the last wave is through, so that the join lands
    /// while records flow and batches are open. Ends when both instances have committed records since the second
    /// started (the group's partitions were shared out) and everything is committed. Returns the records per partition.
    /// </summary>
    private static async Task<int> SecondJoinsMidRunAsync(string servers, string input, string group, ITransactionalProcessor first, ITransactionalProcessor second, Func<Task> startSecond)
    {
        ProcessorHost.Seed(servers, input, Partitions, Wave);
        await Eventually.Until(() => RealBrokerProcessorTests.GroupAtEnd(servers, group, input, Partitions, Wave), Deadline, "the first instance alone copies the first wave");
        var firstAlone = first.CommittedRecords;
        await startSecond();
        var waves = 1;
        bool BothCommitted() => second.CommittedRecords > 0 && first.CommittedRecords > firstAlone;
        while (!BothCommitted())
        {
            waves.Should().BeLessThan(MaxWaves, "within {0} waves both instances commit records: the second joined and the partitions were shared out", MaxWaves);
            ProcessorHost.Seed(servers, input, Partitions, Wave); // at once after the start: the join meets this wave
            waves++;
            var seeded = waves * Wave;
            await Eventually.Until(() => BothCommitted() || RealBrokerProcessorTests.GroupAtEnd(servers, group, input, Partitions, seeded), Deadline, $"wave {waves} is committed to the end, or both instances commit");
        }

        await Eventually.Until(() => RealBrokerProcessorTests.GroupAtEnd(servers, group, input, Partitions, waves * Wave), Deadline, "every partition is committed to its end");

        first.State.Should().Be(ProcessorState.Running);
        second.State.Should().Be(ProcessorState.Running);
        return waves * Wave;
    }

    private static IHost BatchHost(string servers, string instance, string input, string group, string deadLetters, RealBrokerBatchHandlerTests.BatchScript script, GroupProtocol protocol)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(script);
        builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = servers;
                o.TransactionalIdPrefix = "modes-batcher-" + group;
                o.InstanceId = instance;
            })
            .AddTransactionalProcessor<RealBrokerBatchHandlerTests.PoisonAwareBatchCopy>(o =>
            {
                o.Topics.Add(input);
                o.GroupId = group;
                o.GroupProtocol = protocol;
                o.MaxBatchSize = 200;
                o.DeadLetterTopic = deadLetters;
            });
        return builder.Build();
    }
}
