using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Serialization;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>
/// ProduceAsync's checks before it serializes, in their order: a write the transaction no longer takes (a concurrent
/// handler call's, begun in a transaction that has ended) is refused as such, even when the open transaction is too old
/// to serialize for; and a write refused as too late to serialize is not left counted in flight.
/// </summary>
public class ProduceAsyncRefusalOrderTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static Message<string, Text> Order(string value) => new() { Key = "o-1", Value = new Text(value) };

    private static async Task<(TransactionalUnitOfWork Unit, FakeProducer Producer, ManualClock Clock)> ReadyAsync()
    {
        var clock = new ManualClock();
        var (unit, producer) = await TestUnits.CreateReady(o =>
        {
            o.TransactionTimeout = Timeout;
            o.Serializers.Add<Text>(new ScriptedAsyncSerde());
        }, clock);
        return (unit, producer, clock);
    }

    [Fact]
    public async Task A_write_of_a_transaction_that_has_ended_is_refused_even_when_the_open_one_is_too_old_to_serialize_for()
    {
        var (unit, producer, clock) = await ReadyAsync();
        ISerializingUnit serializing = unit;
        unit.BeginTransaction();
        var ended = serializing.Transaction; // the transaction a concurrent handler call began in
        await unit.CommitAsync();
        unit.BeginTransaction();
        clock.Advance(Timeout); // the open transaction is past its commit margin

        var write = () => serializing.SerializeAsync("orders", Order("stale"), ended, CancellationToken.None).AsTask();

        // The stale call's refusal, not a timeout charged to the open transaction's work (Abortable, TimedOut).
        await write.Should().ThrowExactlyAsync<InvalidOperationException>().WithMessage("*is refused*");
        serializing.WritesInFlight.Should().Be(0);
        producer.ProducedCount.Should().Be(0);
    }

    [Fact]
    public async Task A_write_refused_as_too_late_to_serialize_is_not_left_in_flight()
    {
        var (unit, producer, clock) = await ReadyAsync();
        ISerializingUnit serializing = unit;
        unit.BeginTransaction();
        clock.Advance(Timeout - OpenTransaction.CommitMargin(Timeout));

        var tooLate = await unit.Awaiting(u => u.ProduceAsync("orders", Order("late")).AsTask()).Should().ThrowAsync<KafkaTransactionException>();
        var alsoTooLate = await serializing.Awaiting(u => u.SerializeAsync("orders", Order("late"), u.Transaction, CancellationToken.None).AsTask())
            .Should().ThrowAsync<KafkaTransactionException>();

        tooLate.Which.Kind.Should().Be(TransactionErrorKind.Abortable);
        tooLate.Which.Error.Code.Should().Be(ErrorCode.Local_TimedOut);
        alsoTooLate.Which.Error.Code.Should().Be(ErrorCode.Local_TimedOut);
        serializing.WritesInFlight.Should().Be(0, "nothing is being serialized: a count left behind would hold up the transaction's commit");
        producer.ProducedCount.Should().Be(0);
    }
}
