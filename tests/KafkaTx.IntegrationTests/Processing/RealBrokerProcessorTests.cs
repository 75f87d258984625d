using System.Globalization;
using Confluent.Kafka;
using KafkaTx.IntegrationTests.RealBroker;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.Processing;

/// <summary>
/// Exactly-once consume-transform-produce on a real broker, with each group protocol: Classic on every broker, Consumer
/// (KIP-848) where the broker answers ConsumerGroupHeartbeat (API 68, Kafka 4.0 and later). Skipped, with the reason,
/// when there is no broker or it lacks the protocol.
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerProcessorTests(KafkaBrokerFixture broker)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);

    public static TheoryData<GroupProtocol> Protocols => new() { GroupProtocol.Classic, GroupProtocol.Consumer };

    [SkippableTheory]
    [MemberData(nameof(Protocols))]
    public async Task RealBroker_two_instances_copy_ten_thousand_records_exactly_once_through_a_rebalance_and_an_abort(GroupProtocol protocol)
    {
        const int Partitions = 6;
        const int PerPartition = 10_000 / Partitions + 1; // 1,667 per partition, 10,002 in all
        var servers = await broker.RequireBrokerAsync(protocol);
        var topics = await broker.CreateTopicsAsync(Partitions, "copy-in", "copy-out");
        var (input, output) = (topics[0], topics[1]);
        var group = "copiers-" + Guid.NewGuid().ToString("N");
        ProcessorHost.Seed(servers, input, Partitions, PerPartition);
        const int Total = Partitions * PerPartition;

        // One script for both instances: the injected failure happens once, whichever instance owns partition 2 then.
        var script = new CopyScript { OutputTopic = output, FailOnceAt = $"2:{PerPartition / 3}" };
        void Configure(TransactionalProcessorOptions o)
        {
            o.MaxBatchSize = 200;
            o.GroupProtocol = protocol;
            if (protocol == GroupProtocol.Classic)
            {
                o.ConsumerSettings["heartbeat.interval.ms"] = "500"; // with Consumer the broker sets it (refused client-side)
            }
        }

        await using var one = new ProcessorHost(servers, "0", input, group, script, Configure);
        await one.StartAsync();
        await Eventually.Until(() => one.Processor.CommittedRecords >= Total / 4, Deadline, "a quarter is committed by the first instance");

        // A second instance joins: the group rebalances and the first instance gives up partitions mid-stream.
        await using var two = new ProcessorHost(servers, "1", input, group, script, Configure);
        await two.StartAsync();
        await Eventually.Until(() => one.Processor.CommittedRecords + two.Processor.CommittedRecords >= Total && GroupAtEnd(servers, group, input, Partitions, PerPartition), Deadline, "every record is committed");

        script.Failures.Should().Be(1, "one abort was injected");

        // The processor's revocation has no other trace; wait for it, since it may come after the last commit (the
        // first instance can copy the rest before it learns of the new member: at its next heartbeat, or with
        // KIP-848's consumer protocol at the broker's heartbeat interval, 5 s by default).
        await Eventually.Until(() => one.Logs.Entries.Any(e => e.Message.Contains("partitions revoked", StringComparison.Ordinal)), Deadline, "the first instance gives up partitions");
        (one.Processor.State, two.Processor.State).Should().Be((ProcessorState.Running, ProcessorState.Running));

        var visible = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, output);
        visible.Should().HaveCount(Total, "each input record exactly once");
        visible.Select(r => r.Value).Should().OnlyHaveUniqueItems();
        foreach (var partition in visible.GroupBy(r => r.Partition))
        {
            var inputOffsets = partition.OrderBy(r => r.Offset).Select(r => Origin(r.Value!)).ToList();
            inputOffsets.Should().OnlyContain(o => o.Partition == partition.Key);
            inputOffsets.Select(o => o.Offset).Should().BeInAscendingOrder("per-partition order is kept").And.HaveCount(PerPartition);
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Protocols))]
    public async Task RealBroker_graceful_stops_while_handlers_await_with_their_token_lose_nothing_and_keep_order(GroupProtocol protocol)
    {
        const int Partitions = 3;
        const int PerPartition = 400;
        const int Stops = 5;
        var servers = await broker.RequireBrokerAsync(protocol);
        var topics = await broker.CreateTopicsAsync(Partitions, "stop-in", "stop-out");
        var (input, output) = (topics[0], topics[1]);
        var group = "stoppers-" + Guid.NewGuid().ToString("N");
        ProcessorHost.Seed(servers, input, Partitions, PerPartition);
        const int Total = Partitions * PerPartition;

        // Every handler awaits a 1 ms call with its token, as a handler calling a database or a service does: the
        // stops land while one awaits. Static membership (the default) hands the partitions back at each restart.
        var awaiting = 0;
        var script = new CopyScript
        {
            OutputTopic = output,
            Await = async (_, ct) =>
            {
                Interlocked.Increment(ref awaiting);
                try
                {
                    await Task.Delay(1, ct);
                }
                finally
                {
                    Interlocked.Decrement(ref awaiting);
                }
            },
        };
        void Configure(TransactionalProcessorOptions o)
        {
            o.MaxBatchSize = 50;
            o.GroupProtocol = protocol;
        }

        for (var stop = 0; stop < Stops; stop++)
        {
            var handledBefore = script.Handled.Count;
            await using var host = new ProcessorHost(servers, "0", input, group, script, Configure);
            await host.StartAsync();
            await Eventually.Until(() => script.Handled.Count >= handledBefore + 60 && Volatile.Read(ref awaiting) > 0, Deadline, $"stop {stop + 1}: records are being handled");
            await host.StopAsync();
            host.Processor.State.Should().Be(ProcessorState.Stopped);
        }

        await using (var last = new ProcessorHost(servers, "0", input, group, script, Configure))
        {
            await last.StartAsync();
            await Eventually.Until(() => GroupAtEnd(servers, group, input, Partitions, PerPartition), Deadline, "every record is committed");
        }

        script.Cancelled.Should().Be(0, "a graceful stop lets the handler in flight finish within ShutdownTimeout");
        var visible = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, output);
        visible.Select(r => r.Value).Should().OnlyHaveUniqueItems().And.HaveCount(Total, "each input record exactly once: nothing lost, nothing twice");
        foreach (var partition in visible.GroupBy(r => r.Partition))
        {
            partition.OrderBy(r => r.Offset).Select(r => Origin(r.Value!).Offset).Should().Equal(Enumerable.Range(0, PerPartition).Select(i => (long)i), "per-partition order is kept");
        }
    }

    internal static bool GroupAtEnd(string servers, string group, string topic, int partitions, int perPartition)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = servers, GroupId = group }).Build();
        var committed = consumer.Committed(Enumerable.Range(0, partitions).Select(p => new TopicPartition(topic, p)), TimeSpan.FromSeconds(10));
        return committed.All(c => c.Offset.Value == perPartition);
    }

    internal static (int Partition, long Offset) Origin(string value)
    {
        var parts = value.Split(':');
        return (int.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture));
    }
}
