using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing;

/// <summary>
/// With the consumer protocol (KIP-848) a static member joining with a group.instance.id still held by another member
/// is refused with UNRELEASED_INSTANCE_ID, which librdkafka 2.16 raises as a fatal consumer error (seen on its mock
/// cluster). After a restart the holder is the previous incarnation until its session expires: the processor joins
/// again with a new consumer instead of failing.
/// </summary>
public class UnreleasedInstanceIdTests
{
    private static ConsumeException Refused() =>
        new(new ConsumeResult<byte[], byte[]>(), new Error(ErrorCode.UnreleasedInstanceId, "ConsumerGroupHeartbeat fatal error: Broker: The instance ID is still used by another member in the consumer group", true));

    [Fact]
    public async Task A_refused_join_is_retried_with_a_new_consumer_until_the_instance_id_is_released()
    {
        await using var h = new ProcessorHarness(o => o.GroupProtocol = GroupProtocol.Consumer);
        h.Factory.SetupConsumer = consumer =>
        {
            if (h.Factory.Consumers.Count <= 2)
            {
                consumer.ConsumeFailures.Enqueue(Refused()); // the first two joins are refused: the old member still holds the id
            }
        };
        h.Broker.Append("in", 0, "k0", "v0");
        h.Broker.Append("in", 0, "k1", "v1");

        h.Start();
        await Until(() => h.Factory.Consumers.Count == 3 || h.Running!.IsCompleted, "a third consumer joins", seconds: 20);
        h.Loop.State.Should().Be(ProcessorState.Running, h.Loop.Failure?.ToString());
        h.Factory.Consumers[0].IsClosed.Should().BeTrue("the refused consumer is closed before another is created");
        h.Factory.Consumers[1].IsClosed.Should().BeTrue();
        h.Factory.Consumers[2].Subscribed.Should().Equal("in");

        h.Factory.Consumers[2].Rebalance("assign", P0);
        await Until(() => h.Broker.GroupOffset(P0) == 2, "both records commit");

        h.CommittedOutput.Should().Equal("v0", "v1");
        h.Loop.State.Should().Be(ProcessorState.Running);
    }

    [Fact]
    public async Task A_refusal_after_partitions_were_assigned_is_not_retried()
    {
        // Replacing a consumer that holds partitions would drop them behind the group's back: it stays a failure.
        await using var h = new ProcessorHarness(o => o.GroupProtocol = GroupProtocol.Consumer);
        await h.StartAsync(P0);
        await Until(() => h.Consumer.Assignment.Count == 1, "the partition is assigned");

        h.Consumer.ConsumeFailures.Enqueue(Refused());
        await Until(() => h.Loop.State == ProcessorState.Faulted, "the processor fails");

        h.Factory.Consumers.Should().ContainSingle();
        h.Loop.Failure.Should().BeOfType<ConsumeException>().Which.Error.Code.Should().Be(ErrorCode.UnreleasedInstanceId);
    }

    [Fact]
    public async Task Another_fatal_consumer_error_on_joining_still_fails_the_processor()
    {
        await using var h = new ProcessorHarness(o => o.GroupProtocol = GroupProtocol.Consumer);
        h.Factory.SetupConsumer = consumer => consumer.ConsumeFailures.Enqueue(
            new ConsumeException(new ConsumeResult<byte[], byte[]>(), new Error(ErrorCode.UnsupportedAssignor, "unsupported assignor", true)));

        h.Start();
        await Until(() => h.Loop.State == ProcessorState.Faulted, "the processor fails");

        h.Factory.Consumers.Should().ContainSingle();
    }
}
