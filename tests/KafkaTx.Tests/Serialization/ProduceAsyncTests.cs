using Confluent.Kafka;
using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Tests.Serialization;

/// <summary>ProduceAsync with asynchronous serializers, on the in-memory Kafka: what is written, what is refused, what is retried.</summary>
public class ProduceAsyncTests
{
    private readonly InMemoryKafkaCluster _kafka = new();
    private readonly ScriptedAsyncSerde _serde = new();

    private ServiceProvider Services(int maxAttempts = 3) => ScriptedSerdeUnit.Services(_kafka, _serde, maxAttempts);

    [Fact]
    public async Task Records_with_async_serializers_are_written_atomically_to_two_topics_and_read_back_committed()
    {
        await using var provider = Services();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        await unit.ExecuteAsync(async (tx, ct) =>
        {
            await tx.ProduceAsync("orders", new Message<string, Text> { Key = "o-1", Value = new Text("order 1") }, ct);
            await tx.ProduceAsync(new TopicPartition("audit", 0), new Message<Text, Text> { Key = new Text("o-1"), Value = new Text("created") }, ct);
        });

        _kafka.ReadTopic("orders").Select(r => r.ValueText).Should().Equal("order 1");
        _kafka.ReadTopic("audit").Select(r => (r.KeyText, r.ValueText)).Should().Equal(("o-1", "created"));
    }

    [Fact]
    public async Task Produce_of_a_type_whose_serializer_is_async_throws_naming_ProduceAsync_without_calling_it()
    {
        await using var provider = Services();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        var refused = await unit.Awaiting(u => u.ExecuteAsync(tx => tx.Produce("orders", new Message<string, Text> { Key = "o-1", Value = new Text("x") })))
            .Should().ThrowAsync<InvalidOperationException>();
        refused.Which.Message.Should().Contain("ProduceAsync").And.Contain(typeof(Text).FullName);
        _serde.Calls.Should().Be(0, "a synchronous Produce never blocks on an asynchronous serializer");
        _kafka.ReadTopic("orders", IsolationLevel.ReadUncommitted).Should().BeEmpty();
    }

    [Fact]
    public async Task ProduceAsync_with_synchronous_serializers_completes_at_once()
    {
        await using var provider = Services();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        unit.BeginTransaction();

        var write = unit.ProduceAsync("orders", new Message<string, string> { Key = "o-1", Value = "plain" });

        write.IsCompletedSuccessfully.Should().BeTrue("string serializes synchronously: Produce itself");
        await unit.CommitAsync();
        _kafka.ReadTopic("orders").Select(r => r.ValueText).Should().Equal("plain");
    }

    [Fact]
    public async Task ProduceAsync_with_synchronous_serializers_allocates_nothing_more_than_Produce()
    {
        await using var provider = Services();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        unit.BeginTransaction();
        var message = new Message<string, string> { Key = "o-1", Value = "plain" };
        for (var i = 0; i < 200; i++)
        {
            unit.Produce("orders", message); // warm both paths up
            await unit.ProduceAsync("orders", message);
        }

        // Alternated rounds, each path's cheapest: the in-memory log's own growth falls on whichever round runs when it grows.
        const int records = 1_000;
        long produce = long.MaxValue, produceAsync = long.MaxValue;
        var completedAtOnce = 0;
        for (var round = 0; round < 6; round++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < records; i++)
            {
                unit.Produce("orders", message);
            }

            produce = Math.Min(produce, GC.GetAllocatedBytesForCurrentThread() - before);
            before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < records; i++)
            {
                completedAtOnce += CompletedAtOnce(unit.ProduceAsync("orders", message));
            }

            produceAsync = Math.Min(produceAsync, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        await unit.AbortAsync();
        completedAtOnce.Should().Be(6 * records);
        ((double)produceAsync / records).Should().BeApproximately((double)produce / records, 4, $"ProduceAsync of synchronously serialized records is Produce (Produce {produce / (double)records:F1} B/record, ProduceAsync {produceAsync / (double)records:F1} B/record)");
    }

    private static int CompletedAtOnce(ValueTask write) => write.IsCompletedSuccessfully ? 1 : 0;

    [Fact]
    public async Task ProduceAsync_is_refused_when_its_transaction_ended_while_the_record_was_being_serialized()
    {
        await using var provider = Services();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        unit.BeginTransaction();
        _serde.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var write = unit.ProduceAsync("orders", new Message<string, Text> { Key = "o-1", Value = new Text("late") }).AsTask();
        await unit.AbortAsync();
        unit.BeginTransaction(); // another transaction is open when the serializer completes: not the record's
        _serde.Gate.SetResult();

        var refused = await write.Awaiting(w => w).Should().ThrowAsync<InvalidOperationException>();
        refused.Which.Message.Should().Contain("ended while its record was being serialized");
        await unit.CommitAsync();
        _kafka.ReadTopic("orders", IsolationLevel.ReadUncommitted).Should().BeEmpty();
    }

    [Fact]
    public async Task A_registry_outage_in_the_serializer_is_retriable_and_ExecuteAsync_runs_the_work_again()
    {
        await using var provider = Services(maxAttempts: 3);
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        _serde.FailNext(1);
        var runs = 0;

        await unit.ExecuteAsync(async (tx, ct) =>
        {
            runs++;
            tx.Produce("audit", new Message<string, string> { Key = "o-1", Value = $"run {runs}" });
            await tx.ProduceAsync("orders", new Message<string, Text> { Key = "o-1", Value = new Text("order 1") }, ct);
        });

        runs.Should().Be(2, "the first run failed on the registry, not on the record");
        _kafka.ReadTopic("orders").Select(r => r.ValueText).Should().Equal("order 1");
        _kafka.ReadTopic("audit").Select(r => r.ValueText).Should().Equal(["run 2"], "the first run's records were aborted");
    }

    [Fact]
    public async Task A_registry_outage_is_reported_as_a_Retriable_KafkaTransactionException_when_retries_run_out()
    {
        await using var provider = Services(maxAttempts: 1);
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        _serde.FailNext(1);

        var failure = await unit.Awaiting(u => u.ExecuteAsync((tx, ct) => tx.ProduceAsync("orders", new Message<string, Text> { Key = "o-1", Value = new Text("x") }, ct)))
            .Should().ThrowAsync<KafkaTransactionException>();
        failure.Which.Kind.Should().Be(TransactionErrorKind.Retriable);
        failure.Which.InnerException.Should().BeOfType<HttpRequestException>();
    }

    [Fact]
    public async Task A_record_its_schema_refuses_fails_the_work_once_as_Rejected_and_writes_nothing()
    {
        await using var provider = Services(maxAttempts: 3);
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        _serde.Refuses = "bad";
        var runs = 0;

        await unit.Awaiting(u => u.ExecuteAsync(async (tx, ct) =>
        {
            runs++;
            tx.Produce("audit", new Message<string, string> { Key = "o-1", Value = "audit" });
            await tx.ProduceAsync("orders", new Message<string, Text> { Key = "o-1", Value = new Text("bad") }, ct);
        })).Should().ThrowAsync<KafkaTransactionException>().Where(e => e.Kind == TransactionErrorKind.Rejected && e.InnerException is InvalidDataException);

        runs.Should().Be(1, "retrying cannot make the record fit its schema");
        _kafka.ReadTopic("audit").Should().BeEmpty("the transaction was aborted");
    }
}
