using Confluent.Kafka;
using KafkaTx.Processing.Concurrent;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Serialization;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.Processing.Concurrent;

/// <summary>A concurrent call's ProduceAsync: its record is written only if the call may still write once its serializer completes.</summary>
public class HandlerCallProduceAsyncTests
{
    private readonly ScriptedAsyncSerde _serde = new() { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };

    [Fact]
    public async Task A_ProduceAsync_still_serializing_when_its_call_returned_is_refused_writes_nothing_and_fails_the_commit_of_its_transaction()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Serializers.Add<Text>(_serde));
        await using var _ = unit;
        unit.BeginTransaction();
        var call = Call(unit);

        var write = call.Scope.ProduceAsync("out", new Message<string, Text> { Value = new Text("late") }).AsTask(); // not awaited by the handler
        call.EndedAtOnce(ValueTask.CompletedTask, activity: null);
        _serde.Gate!.SetResult();
        await write.Awaiting(w => w).Should().ThrowAsync<InvalidOperationException>().WithMessage("*its call has returned*");
        producer.OpenRecords().Should().BeEmpty("a write after its call returned would land in a transaction that no longer answers for it");

        var failure = await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>("the batch may not commit without the record");
        failure.Which.Kind.Should().Be(TransactionErrorKind.Abortable, "the processor aborts, rewinds and runs the batch again");
        failure.Which.Message.Should().Contain("1 ProduceAsync call(s) finished after their handler call had returned");
        producer.Committed.Should().BeEmpty();
    }

    [Fact]
    public async Task A_ProduceAsync_made_after_its_call_returned_fails_the_commit_of_its_transaction()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Serializers.Add<Text>(_serde));
        await using var _ = unit;
        unit.BeginTransaction();
        var call = Call(unit);
        call.EndedAtOnce(ValueTask.CompletedTask, activity: null);

        await call.Scope.Awaiting(s => s.ProduceAsync("out", new Message<string, Text> { Value = new Text("after") }).AsTask()) // from a task the handler left running
            .Should().ThrowAsync<InvalidOperationException>().WithMessage("*its call has returned*");

        await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>().Where(e => e.Kind == TransactionErrorKind.Abortable);
        producer.Committed.Should().BeEmpty();
    }

    [Fact]
    public async Task A_write_of_a_call_whose_transaction_has_ended_is_refused_and_never_lands_in_the_next_one()
    {
        // A call abandoned with its batch may reach its ProduceAsync only once the next batch's transaction is open.
        var (unit, producer) = await TestUnits.CreateReady(o => o.Serializers.Add<Text>(_serde));
        await using var _ = unit;
        var serializing = (ISerializingUnit)unit;
        unit.BeginTransaction();
        var ended = serializing.Transaction;
        await unit.AbortAsync();
        unit.BeginTransaction();
        _serde.Gate!.SetResult();

        var late = serializing.SerializeAsync("out", new Message<string, Text> { Value = new Text("late") }, ended, CancellationToken.None);
        await late.AsTask().Awaiting(w => w).Should().ThrowAsync<InvalidOperationException>();

        await unit.CommitAsync(); // not held up: the refused write was never counted in this transaction
        producer.Committed.Should().BeEmpty("nothing of the ended transaction's call may land in the next one");
    }

    [Fact]
    public async Task A_ProduceAsync_awaited_within_its_call_writes_the_serialized_record()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Serializers.Add<Text>(_serde));
        await using var _ = unit;
        unit.BeginTransaction();
        var call = Call(unit);

        var write = call.Scope.ProduceAsync(new TopicPartition("out", 0), new Message<string, Text> { Value = new Text("in time") }).AsTask();
        _serde.Gate!.SetResult();
        await write;

        producer.OpenRecords().Select(r => r.ValueText).Should().Equal("in time");
    }

    [Fact]
    public async Task A_call_that_returns_with_its_ProduceAsync_still_serializing_has_failed_and_the_next_call_of_its_slot_has_not()
    {
        var (unit, _) = await TestUnits.CreateReady(o => o.Serializers.Add<Text>(_serde));
        await using var _ = unit;
        unit.BeginTransaction();
        var call = Call(unit);

        var write = call.Scope.ProduceAsync("out", new Message<string, Text> { Value = new Text("forgotten") }).AsTask(); // not awaited
        call.EndedAtOnce(ValueTask.CompletedTask, activity: null);
        call.Error.Should().BeOfType<InvalidOperationException>().Which.Message.Should().Contain("Await every ProduceAsync");

        // The slot's next call awaits everything: the earlier call's write, still serializing, is not held against it.
        call.Begin(call.Record, startedAt: 0);
        call.EndedAtOnce(ValueTask.CompletedTask, activity: null);
        call.Error.Should().BeNull();
        _serde.Gate!.SetResult();
        await write.Awaiting(w => w).Should().ThrowAsync<InvalidOperationException>();
    }

    private static HandlerCall Call(ITransactionalUnitOfWork unit)
    {
        var raw = new ConsumeResult<byte[]?, byte[]?> { Topic = "in", Partition = 0, Offset = 7, Message = new Message<byte[]?, byte[]?>() };
        return new HandlerCall(new BufferedRecord(raw, LaneId.Of(ProcessingOrder.Key, raw)), 0, 0, unit);
    }
}
