using Confluent.Kafka;
using KafkaTx.IntegrationTests.Processing;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// A processor on the consumer group protocol of KIP-848 (<see cref="GroupProtocol.Consumer"/>) against a real broker:
/// exactly once through restarts, and a static member whose group.instance.id is still held. Skipped, with the reason,
/// when there is no broker or it does not answer ConsumerGroupHeartbeat (API 68, Kafka 4.0 and later). The same
/// processor scenarios as the classic protocol's run with it too (RealBrokerProcessorTests' protocol parameter).
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerConsumerProtocolTests(KafkaBrokerFixture broker)
{
    private const int Partitions = 3;
    private const int PerSeeding = 300;
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);

    private static void ConsumerProtocol(TransactionalProcessorOptions options)
    {
        options.GroupProtocol = GroupProtocol.Consumer;
        options.MaxBatchSize = 50;
    }

    [SkippableFact]
    public async Task RealBroker_consumer_protocol_processor_restarted_copies_exactly_once_and_commits_the_group_to_the_end()
    {
        var servers = await broker.RequireBrokerAsync(GroupProtocol.Consumer);
        var topics = await broker.CreateTopicsAsync(Partitions, "kip848-in", "kip848-out");
        var (input, output) = (topics[0], topics[1]);
        var group = "kip848-copiers-" + Guid.NewGuid().ToString("N");
        var script = new CopyScript { OutputTopic = output };
        ProcessorHost.Seed(servers, input, Partitions, PerSeeding);

        await using (var first = new ProcessorHost(servers, "0", input, group, script, ConsumerProtocol))
        {
            await first.StartAsync();
            await Eventually.Until(() => first.Processor.CommittedRecords >= PerSeeding, Deadline, "the first incarnation commits a third of the records");
            await first.StopAsync(); // a graceful stop: the static member leaves for now, and its restart takes its place
            first.Processor.State.Should().Be(ProcessorState.Stopped);
        }

        ProcessorHost.Seed(servers, input, Partitions, PerSeeding);
        await using var second = new ProcessorHost(servers, "0", input, group, script, ConsumerProtocol);
        await second.StartAsync();
        await Eventually.Until(() => RealBrokerProcessorTests.GroupAtEnd(servers, group, input, Partitions, 2 * PerSeeding), Deadline, "the group's offsets reach the end of every partition");

        second.Processor.State.Should().Be(ProcessorState.Running);
        AssertCopiedExactlyOnce(servers, output, 2 * PerSeeding);
    }

    [SkippableFact]
    public async Task RealBroker_a_restarted_static_member_retries_through_UNRELEASED_INSTANCE_ID_and_then_copies_exactly_once()
    {
        var servers = await broker.RequireBrokerAsync(GroupProtocol.Consumer);
        var topics = await broker.CreateTopicsAsync(Partitions, "unreleased-in", "unreleased-out");
        var (input, output) = (topics[0], topics[1]);
        var group = "unreleased-copiers-" + Guid.NewGuid().ToString("N");
        var script = new CopyScript { OutputTopic = output };
        ProcessorHost.Seed(servers, input, Partitions, PerSeeding);

        await using (var first = new ProcessorHost(servers, "0", input, group, script, ConsumerProtocol))
        {
            await first.StartAsync();
            await Eventually.Until(() => RealBrokerProcessorTests.GroupAtEnd(servers, group, input, Partitions, PerSeeding), Deadline, "the first incarnation commits the first records");
            await first.StopAsync();
        }

        // The previous incarnation still holds the instance id, as a crashed member does until its session expires on
        // the broker (group.consumer.session.timeout.ms): here a member that joined with it and stays, committing nothing.
        ProcessorHost.Seed(servers, input, Partitions, PerSeeding);
        await using var restarted = new ProcessorHost(servers, "0", input, group, script, ConsumerProtocol);
        var instanceId = new KafkaTransactionsOptions { TransactionalIdPrefix = "copier-" + group, InstanceId = "0" }.ResolveTransactionalId()!; // as ProcessorHost names it
        using (var holder = HoldInstanceId(servers, group, input, instanceId))
        {
            await restarted.StartAsync();
            await restarted.Logs.WaitFor(message => message.Contains("UNRELEASED_INSTANCE_ID", StringComparison.Ordinal)).WaitAsync(Deadline);
            await Eventually.Until(() => restarted.Logs.Entries.Count(e => e.Message.Contains("UNRELEASED_INSTANCE_ID", StringComparison.Ordinal)) >= 2, Deadline, "the restarted instance is refused again and keeps trying");

            restarted.Processor.State.Should().Be(ProcessorState.Running, "a refused join is retried, never fatal");
            restarted.Processor.CommittedRecords.Should().Be(0, "the instance id, and so the partitions, are still held");
            holder.Close(); // the old member is gone: its instance id is released
        }

        await Eventually.Until(() => RealBrokerProcessorTests.GroupAtEnd(servers, group, input, Partitions, 2 * PerSeeding), Deadline, "the restarted instance joins and commits to the end");

        restarted.Processor.State.Should().Be(ProcessorState.Running);
        AssertCopiedExactlyOnce(servers, output, 2 * PerSeeding);
    }

    /// <summary>
    /// A consumer-protocol member of the group with this static instance id, once it has partitions. Should the stopped
    /// incarnation still hold the id, this member is refused as the processor would be, and tries again until it joins.
    /// </summary>
    private static IConsumer<Ignore, Ignore> HoldInstanceId(string servers, string group, string topic, string instanceId)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = servers,
            GroupId = group,
            GroupInstanceId = instanceId,
            GroupProtocol = GroupProtocol.Consumer,
            EnableAutoCommit = false,
            IsolationLevel = IsolationLevel.ReadCommitted,
        };
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            var holder = new ConsumerBuilder<Ignore, Ignore>(config).Build();
            holder.Subscribe(topic);
            try
            {
                while (holder.Assignment.Count == 0)
                {
                    if (DateTime.UtcNow > deadline)
                    {
                        throw new TimeoutException($"The member holding instance id {instanceId} got no partitions of {topic}.");
                    }

                    holder.Consume(TimeSpan.FromMilliseconds(200)); // positions are never committed: the records stay the processor's
                }

                return holder;
            }
            catch (ConsumeException e) when (e.Error.Code == ErrorCode.UnreleasedInstanceId && DateTime.UtcNow < deadline)
            {
                holder.Dispose(); // fatal for this consumer: a new one tries again
            }
            catch
            {
                holder.Dispose();
                throw;
            }
        }
    }

    private static void AssertCopiedExactlyOnce(string servers, string output, int perPartition)
    {
        var visible = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, output);
        visible.Select(r => r.Value).Should().OnlyHaveUniqueItems().And.HaveCount(Partitions * perPartition, "each input record exactly once");
        foreach (var partition in visible.GroupBy(r => r.Partition))
        {
            partition.OrderBy(r => r.Offset).Select(r => RealBrokerProcessorTests.Origin(r.Value!).Offset)
                .Should().Equal(Enumerable.Range(0, perPartition).Select(i => (long)i), "per-partition order is kept");
        }
    }
}
