using System.Text;
using Confluent.Kafka;
using KafkaTx.Tests.Fakes;

namespace KafkaTx.Tests.UnitOfWork;

public class ProduceTests
{
    [Fact]
    public async Task One_transaction_writes_different_key_and_value_types_to_different_topics()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        await unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("strings", new Message<string, string> { Key = "k", Value = "v" });
            scope.Produce("numbers", new Message<long, int> { Key = 7L, Value = 42 });
            scope.Produce("bytes", new Message<Null, byte[]> { Value = [1, 2, 3] });
            scope.Produce(new TopicPartition("pinned", 3), new Message<string, double> { Key = "pi", Value = 3.5 });
            return ValueTask.CompletedTask;
        });

        producer.Committed.Should().HaveCount(4);
        producer.Committed[0].KeyText.Should().Be("k");
        producer.Committed[1].Key.Should().Equal(Serializers.Int64.Serialize(7L, SerializationContext.Empty));
        producer.Committed[1].Value.Should().Equal(Serializers.Int32.Serialize(42, SerializationContext.Empty));
        producer.Committed[2].Key.Should().BeNull();
        producer.Committed[2].Value.Should().Equal(1, 2, 3);
        producer.Committed[3].Should().Match<ProducedRecord>(r => r.Topic == "pinned" && r.Partition == 3);
    }

    [Fact]
    public async Task Headers_and_null_values_pass_through()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var headers = new Headers { { "trace", Encoding.UTF8.GetBytes("abc") } };

        await unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("t", new Message<string, string?> { Key = "tombstone", Value = null, Headers = headers });
            return ValueTask.CompletedTask;
        });

        producer.Committed.Single().Value.Should().BeNull();
        producer.Committed.Single().Headers.Should().BeSameAs(headers);
    }

    [Fact]
    public async Task A_type_without_a_serializer_fails_with_a_message_saying_how_to_register_one()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        unit.BeginTransaction();

        var act = () => unit.Produce("orders", new Message<string, Order> { Key = "o-1", Value = new Order("o-1", 10m) });

        act.Should().Throw<InvalidOperationException>().WithMessage("*No serializer*Order*orders*AddSerializer<Order>*");
        producer.ProducedCount.Should().Be(0);
    }

    [Fact]
    public async Task A_registered_serializer_is_used_for_its_type()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Serializers.Add(new OrderSerializer()));

        await unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("orders", new Message<string, Order> { Key = "o-1", Value = new Order("o-1", 10m) });
            return ValueTask.CompletedTask;
        });

        producer.Committed.Single().ValueText.Should().Be("o-1:10");
    }

    [Fact]
    public async Task A_record_refused_by_the_client_at_once_is_classified_and_names_the_topic()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.ProduceFailures.Enqueue(new ProduceException<byte[]?, byte[]?>(new Error(ErrorCode.MsgSizeTooLarge, "Broker: Message size too large"), new DeliveryResult<byte[]?, byte[]?>()));
        unit.BeginTransaction();

        var act = () => unit.Produce("audit-log", new Message<string, string> { Value = new string('x', 10) });

        var failure = act.Should().Throw<KafkaTransactionException>().Which;
        failure.Kind.Should().Be(TransactionErrorKind.Rejected);
        failure.Message.Should().Contain("audit-log");
        unit.State.Should().Be(TransactionState.InTransaction, "the transaction itself is still usable");
    }

    [Fact]
    public async Task A_full_local_queue_waits_for_room_instead_of_failing()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.ProduceFailures.Enqueue(new ProduceException<byte[]?, byte[]?>(new Error(ErrorCode.Local_QueueFull, "Local: Queue full"), new DeliveryResult<byte[]?, byte[]?>()));
        producer.ProduceFailures.Enqueue(new ProduceException<byte[]?, byte[]?>(new Error(ErrorCode.Local_QueueFull, "Local: Queue full"), new DeliveryResult<byte[]?, byte[]?>()));

        await unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("t", new Message<string, string> { Value = "eventually" });
            return ValueTask.CompletedTask;
        });

        producer.Committed.Single().ValueText.Should().Be("eventually");
        producer.CallCount("Produce:t").Should().Be(3);
    }

    [Fact]
    public async Task Sending_offsets_validates_its_input_before_sending()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        unit.BeginTransaction();

        await unit.Awaiting(u => u.SendOffsetsAsync([], new FakeGroupMetadata())).Should().ThrowAsync<ArgumentException>().WithMessage("*No offsets*");
        await unit.Awaiting(u => u.SendOffsetsAsync([new TopicPartitionOffset("in", 0, Offset.Unset)], new FakeGroupMetadata())).Should().ThrowAsync<ArgumentException>().WithMessage("*not a valid position*");
        await unit.Awaiting(u => u.SendOffsetsAsync([new TopicPartitionOffset("in", 0, 1)], null!)).Should().ThrowAsync<ArgumentNullException>();
        producer.CallCount("SendOffsets").Should().Be(0);
    }

    [Fact]
    public async Task Offsets_sent_in_a_transaction_go_to_the_producer()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        await unit.ExecuteAsync(async (scope, ct) =>
        {
            scope.Produce("out", new Message<string, string> { Value = "x" });
            await scope.SendOffsetsAsync([new TopicPartitionOffset("in", 2, 17)], new FakeGroupMetadata(), ct);
        });

        producer.CommittedOffsets.Single().Should().Equal(new TopicPartitionOffset("in", 2, 17));
    }

    [Fact]
    public async Task A_rejected_offset_commit_fails_the_transaction_as_abortable_and_it_is_aborted()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 1);
        producer.SendOffsetsFailures.Enqueue(KafkaErrors.Abortable(ErrorCode.UnknownMemberId));

        var failure = await unit.Awaiting(u => u.ExecuteAsync(async (scope, ct) =>
        {
            scope.Produce("out", new Message<string, string> { Value = "x" });
            await scope.SendOffsetsAsync([new TopicPartitionOffset("in", 0, 5)], new FakeGroupMetadata(), ct);
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Abortable);
        failure.Which.Message.Should().Contain("rewind");
        producer.Committed.Should().BeEmpty();
        producer.CallCount("Abort").Should().Be(1);
    }

    internal sealed record Order(string Id, decimal Amount);

    [Fact]
    public async Task A_serializer_that_throws_mid_transaction_aborts_it_and_nothing_of_it_is_committed()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Serializers.Add(new OrderSerializer()));

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            scope.Produce("orders", new Message<string, Order> { Key = "o-1", Value = new Order("o-1", 10m) });
            scope.Produce("orders", new Message<string, Order> { Key = "o-2", Value = new Order("o-2", -1m) }); // the serializer refuses it
            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected, "the record's own failure: retrying will not help");
        failure.Which.InnerException.Should().BeOfType<ArgumentOutOfRangeException>();
        failure.Which.Message.Should().Contain("negative amount");
        producer.Committed.Should().BeEmpty();
        producer.Aborted.Select(r => r.KeyText).Should().Equal("o-1");
        unit.State.Should().Be(TransactionState.Ready, "the work's own failure: the unit goes on");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public async Task A_null_or_empty_topic_is_refused_before_anything_is_sent(string? topic)
    {
        var (unit, producer) = await TestUnits.CreateReady();
        unit.BeginTransaction();

        var act = () => unit.Produce(topic!, new Message<string, string> { Key = "k", Value = "v" });

        act.Should().Throw<ArgumentException>().WithMessage("*topic is null or empty*name the topic*");
        producer.ProducedCount.Should().Be(0);
        unit.State.Should().Be(TransactionState.InTransaction, "the transaction stays open: abort it or go on");
    }

    private sealed class OrderSerializer : ISerializer<Order>
    {
        public byte[] Serialize(Order data, SerializationContext context) => data.Amount < 0
            ? throw new ArgumentOutOfRangeException(nameof(data), "An order with a negative amount cannot be serialized.")
            : Encoding.UTF8.GetBytes(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{data.Id}:{data.Amount}"));
    }
}
