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
/// instances sharing a group (the second joining mid-run), every record copied once and the group committed to the
/// end. The consumer protocol (KIP-848) runs where the broker answers ConsumerGroupHeartbeat (API 68, Kafka 4.0 and
/// later); otherwise, and without a broker, the test skips with the reason. Outcomes only: read_committed output and
/// the group's offsets, no timing.
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerProtocolModesTests(KafkaBrokerFixture broker)
{
    private const int Partitions = 3;
    private const int PerPartition = 400;
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
        ProcessorHost.Seed(servers, input, Partitions, PerPartition);
        var script = new RealBrokerBatchHandlerTests.BatchScript(output, new HashSet<string>(), new ConcurrentQueue<int>());

        using var one = BatchHost(servers, "0", input, group, deadLetters, script, protocol);
        await one.StartAsync();
        var first = one.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        await Eventually.Until(() => first.CommittedRecords >= PerPartition / 2, Deadline, "the first instance commits some batches");
        using var two = BatchHost(servers, "1", input, group, deadLetters, script, protocol);
        await two.StartAsync(); // joins: the partitions are shared out again
        await Eventually.Until(() => RealBrokerProcessorTests.GroupAtEnd(servers, group, input, Partitions, PerPartition), Deadline, "every partition is committed to its end");
        await two.StopAsync();
        await one.StopAsync();

        var visible = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, output);
        visible.Select(r => r.Value).Should().OnlyHaveUniqueItems("each record commits exactly once").And.HaveCount(Partitions * PerPartition);
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
        ProcessorHost.Seed(servers, input, Partitions, PerPartition);
        var script = new CopyScript { OutputTopic = output };
        void Concurrent(TransactionalProcessorOptions o)
        {
            o.GroupProtocol = protocol;
            o.MaxConcurrency = 8;
            o.MaxBatchSize = 100;
        }

        await using var one = new ProcessorHost(servers, "0", input, group, script, Concurrent);
        await one.StartAsync();
        await Eventually.Until(() => one.Processor.CommittedRecords >= PerPartition / 2, Deadline, "the first instance commits some batches");
        await using var two = new ProcessorHost(servers, "1", input, group, script, Concurrent);
        await two.StartAsync();
        await Eventually.Until(() => RealBrokerProcessorTests.GroupAtEnd(servers, group, input, Partitions, PerPartition), Deadline, "every partition is committed to its end");
        await two.StopAsync();
        await one.StopAsync();

        one.Processor.State.Should().Be(ProcessorState.Stopped);
        two.Processor.State.Should().Be(ProcessorState.Stopped);
        var visible = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, output);
        visible.Select(r => r.Value).Should().OnlyHaveUniqueItems("each record commits exactly once").And.HaveCount(Partitions * PerPartition);
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
