using System.Text;
using Confluent.Kafka;
using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Tests.Serialization;

/// <summary>
/// ProduceAsync on the in-memory Kafka, where a serializer is slow or refuses: a ProduceAsync not awaited never goes
/// missing from a committed transaction, a cancelled caller returns at once, a registry slower than the transaction's
/// remaining time fails it in time, a record its serializer refuses is Rejected, and one finishing after the unit
/// was disposed is refused.
/// </summary>
public class ProduceAsyncReviewTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // far above what each step takes: a hang fails the test

    private readonly InMemoryKafkaCluster _kafka = new();
    private readonly ScriptedAsyncSerde _serde = new();

    private ServiceProvider Services(int maxAttempts = 3, TimeSpan? transactionTimeout = null, Action<IKafkaTransactionsBuilder>? serializers = null) =>
        ScriptedSerdeUnit.Services(_kafka, _serde, maxAttempts, transactionTimeout, serializers);

    private static Message<string, Text> Order(string value) => new() { Key = "o-1", Value = new Text(value) };

    [Fact]
    public async Task A_ProduceAsync_not_awaited_when_the_transaction_commits_aborts_it_as_Abortable_and_nothing_is_visible()
    {
        await using var provider = Services();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        unit.BeginTransaction();
        _serde.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        unit.Produce("audit", new Message<string, string> { Key = "o-1", Value = "audit" });

        var write = unit.ProduceAsync("orders", Order("not awaited")).AsTask(); // the caller forgot to await it
        var failure = await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();
        _serde.Gate.SetResult();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Abortable);
        failure.Which.Message.Should().Contain("1 ProduceAsync call(s) still in flight: await every ProduceAsync before the transaction commits");
        unit.State.Should().Be(TransactionState.Ready, "the transaction was aborted instead of committed");
        await write.Awaiting(w => w.WaitAsync(Bound)).Should().ThrowAsync<InvalidOperationException>("its transaction ended: the record is written nowhere");
        _kafka.ReadTopic("audit").Should().BeEmpty("the transaction was aborted");
        _kafka.ReadTopic("orders", IsolationLevel.ReadUncommitted).Should().BeEmpty();
    }

    [Fact]
    public async Task ExecuteAsync_runs_the_work_again_when_a_ProduceAsync_was_not_awaited_and_the_record_is_written_exactly_once()
    {
        await using var provider = Services(maxAttempts: 3);
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _serde.Gate = gate;
        Task? forgotten = null;
        var runs = 0;

        await unit.ExecuteAsync(async (tx, ct) =>
        {
            runs++;
            tx.Produce("audit", new Message<string, string> { Key = "o-1", Value = $"run {runs}" });
            if (runs == 1)
            {
                forgotten = tx.ProduceAsync("orders", Order("order 1"), ct).AsTask(); // not awaited: the commit must not go without it
                return;
            }

            gate.TrySetResult();
            await tx.ProduceAsync("orders", Order("order 1"), ct);
        }).WaitAsync(Bound);

        runs.Should().Be(2, "the first commit found the ProduceAsync in flight, aborted (Abortable) and ExecuteAsync ran the work again");
        await forgotten!.Awaiting(w => w.WaitAsync(Bound)).Should().ThrowAsync<InvalidOperationException>("the first run's record came after its transaction ended");
        _kafka.ReadTopic("orders").Select(r => r.ValueText).Should().Equal(["order 1"], "once: neither lost nor duplicated");
        _kafka.ReadTopic("audit").Select(r => r.ValueText).Should().Equal(["run 2"], "the first run was aborted");
    }

    [Fact]
    public async Task A_cancelled_ProduceAsync_returns_at_once_while_its_serializer_still_runs_and_writes_nothing()
    {
        await using var provider = Services();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        unit.BeginTransaction();
        _serde.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cancel = new CancellationTokenSource();

        var write = unit.ProduceAsync("orders", Order("cancelled"), cancel.Token).AsTask();
        await cancel.CancelAsync();

        await write.Awaiting(w => w.WaitAsync(Bound)).Should().ThrowAsync<OperationCanceledException>("the caller stopped waiting for the registry");
        await unit.CommitAsync(); // not in flight any more: the transaction commits, without the record
        _serde.Gate.SetResult();
        await unit.ExecuteAsync((tx, ct) => tx.ProduceAsync("orders", Order("next"), ct)).WaitAsync(Bound);
        _kafka.ReadTopic("orders", IsolationLevel.ReadUncommitted).Select(r => r.ValueText).Should().Equal(["next"], "the abandoned serialization is never written");
    }

    [Fact]
    public async Task A_registry_slower_than_the_transactions_remaining_time_fails_it_as_Retriable_in_time_and_the_producer_goes_on()
    {
        await using var provider = Services(maxAttempts: 1, transactionTimeout: TimeSpan.FromSeconds(5)); // its margin (0.5 s) holds on a loaded machine
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        _serde.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously); // never opens

        var failure = await unit.Awaiting(u => u.ExecuteAsync(async (tx, ct) =>
        {
            tx.Produce("audit", new Message<string, string> { Key = "o-1", Value = "audit" });
            await tx.ProduceAsync("orders", Order("slow"), ct);
        }).WaitAsync(Bound)).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Retriable, "the registry is at fault, not the record");
        failure.Which.Error.Code.Should().Be(ErrorCode.Local_ValueSerialization);
        failure.Which.InnerException.Should().BeOfType<TimeoutException>().Which.Message.Should().Contain("did not answer within the transaction's remaining time");
        unit.State.Should().Be(TransactionState.Ready, "aborted before the broker's transaction timeout: not fenced");
        _kafka.ReadTopic("audit").Should().BeEmpty();
        await unit.ExecuteAsync(tx => tx.Produce("audit", new Message<string, string> { Key = "o-2", Value = "next" }));
        _kafka.ReadTopic("audit").Select(r => r.ValueText).Should().Equal("next");
    }

    [Fact]
    public async Task A_record_its_async_schema_refuses_is_Rejected_with_the_cause_and_ExecuteAsync_does_not_run_it_again()
    {
        await using var provider = Services(maxAttempts: 3);
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        _serde.Refuses = "bad";
        var runs = 0;

        var failure = await unit.Awaiting(u => u.ExecuteAsync(async (tx, ct) =>
        {
            runs++;
            tx.Produce("audit", new Message<string, string> { Key = "o-1", Value = "audit" });
            await tx.ProduceAsync("orders", Order("bad"), ct);
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        failure.Which.Error.Code.Should().Be(ErrorCode.Local_ValueSerialization);
        failure.Which.InnerException.Should().BeOfType<InvalidDataException>();
        failure.Which.Message.Should().Contain("'orders'").And.Contain("value serializer").And.Contain("'bad' does not match the schema")
            .And.ContainEquivalentOf("fix the record or its schema; retrying will not help");
        runs.Should().Be(1, "retrying cannot make the record fit its schema");
        _kafka.ReadTopic("audit").Should().BeEmpty("the transaction was aborted");
    }

    [Fact]
    public async Task A_key_a_synchronous_serializer_refuses_is_Rejected_naming_the_key()
    {
        var refusing = new RefusingKeySerializer();
        await using var provider = Services(serializers: k => k.AddSerializer<OrderKey>(refusing));
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        var runs = 0;

        var failure = await unit.Awaiting(u => u.ExecuteAsync(tx =>
        {
            runs++;
            tx.Produce("orders", new Message<OrderKey, string> { Key = new OrderKey(string.Empty), Value = "x" });
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        failure.Which.Error.Code.Should().Be(ErrorCode.Local_KeySerialization);
        failure.Which.InnerException.Should().BeOfType<ArgumentException>();
        failure.Which.Message.Should().Contain("'orders'").And.Contain("key serializer").And.Contain("an order key is never empty");
        runs.Should().Be(1);
        _kafka.ReadTopic("orders", IsolationLevel.ReadUncommitted).Should().BeEmpty();
    }

    [Fact]
    public async Task No_serializer_registered_still_fails_as_the_mistake_it_is_not_as_a_rejected_record()
    {
        await using var provider = Services();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        await unit.Awaiting(u => u.ExecuteAsync(tx => tx.Produce("orders", new Message<OrderKey, string> { Key = new OrderKey("o-1"), Value = "x" })))
            .Should().ThrowAsync<InvalidOperationException>().WithMessage("No serializer is registered*");
    }

    public sealed record OrderKey(string Id);

    private sealed class RefusingKeySerializer : ISerializer<OrderKey>
    {
        public byte[] Serialize(OrderKey data, SerializationContext context) =>
            data.Id.Length == 0 ? throw new ArgumentException("an order key is never empty", nameof(data)) : Encoding.UTF8.GetBytes(data.Id);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_ProduceAsync_finishing_after_the_unit_was_disposed_is_refused(bool asynchronously)
    {
        // Dispose (not only DisposeAsync) stops the writes: the late record is refused, never handed to the disposed producer.
        await using var provider = Services();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        unit.BeginTransaction();
        _serde.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var write = unit.ProduceAsync("orders", Order("late")).AsTask();

        if (asynchronously)
        {
            await unit.DisposeAsync();
        }
        else
        {
            unit.Dispose();
        }

        _serde.Gate.SetResult();
        var thrown = await write.Awaiting(w => w.WaitAsync(Bound)).Should().ThrowAsync<Exception>();
        thrown.Which.Should().BeOfType<InvalidOperationException>("the record's transaction ended with the unit: " + thrown.Which);
        _kafka.ReadTopic("orders", IsolationLevel.ReadUncommitted).Should().BeEmpty();
    }
}
