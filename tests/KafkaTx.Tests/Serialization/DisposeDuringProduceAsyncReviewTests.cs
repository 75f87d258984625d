using Confluent.Kafka;
using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Tests.Serialization;

/// <summary>
/// Review of issue 20: a unit disposed while a ProduceAsync is serializing. The synchronous Dispose aborts through the
/// producer directly (not orchestrator.AbortAsync), so OpenTransaction.StopWrites is never called: the late record
/// then passes TryWrite (still "open", same number) and reaches the disposed producer, instead of being refused as the
/// docs say ("its transaction ended ... InvalidOperationException").
/// </summary>
public class DisposeDuringProduceAsyncReviewTests
{
    private readonly InMemoryKafkaCluster _kafka = new();
    private readonly ScriptedAsyncSerde _serde = new();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_ProduceAsync_finishing_after_the_unit_was_disposed_is_refused(bool asynchronously)
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "in-memory";
            o.TransactionalIdPrefix = "orders-api";
            o.InstanceId = "0";
        }).UseInMemoryKafka(_kafka).AddSerializer<Text>(_serde);
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        unit.BeginTransaction();
        _serde.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var write = unit.ProduceAsync("orders", new Message<string, Text> { Key = "o-1", Value = new Text("late") }).AsTask();

        if (asynchronously)
        {
            await unit.DisposeAsync();
        }
        else
        {
            unit.Dispose();
        }

        _serde.Gate.SetResult();
        var thrown = await write.Awaiting(w => w.WaitAsync(TimeSpan.FromSeconds(10))).Should().ThrowAsync<Exception>();
        thrown.Which.Should().BeOfType<InvalidOperationException>("the record's transaction ended with the unit: " + thrown.Which);
        _kafka.ReadTopic("orders", IsolationLevel.ReadUncommitted).Should().BeEmpty();
    }
}
