using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// A pool of units of work on a real broker: transactions in flight at once, each slot committing on its own
/// transactional.id, and a restarted instance fencing every slot of its previous incarnation (epoch fencing by the
/// transaction coordinator, which the mock cluster does not emulate).
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerPoolTests(KafkaBrokerFixture broker)
{
    private static ServiceProvider PoolApp(string servers, string prefix, int size)
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = servers;
            o.TransactionalIdPrefix = prefix;
            o.InstanceId = "pod-0";
        }).AddUnitOfWorkPool(size);
        return services.BuildServiceProvider();
    }

    [SkippableFact]
    public async Task RealBroker_concurrent_callers_commit_through_every_slot_and_everything_is_visible_once()
    {
        var servers = broker.RequireBroker();
        var topic = (await broker.CreateTopicsAsync(3, "pool-orders"))[0];
        await using var app = PoolApp(servers, KafkaTxHost.UniqueName("pool"), 4);
        var pool = app.GetRequiredService<ITransactionalUnitOfWorkPool>();
        await pool.InitializeAsync();
        var open = 0;
        var mostOpen = 0;

        await Task.WhenAll(Enumerable.Range(0, 40).Select(request => pool.ExecuteAsync(async (tx, ct) =>
        {
            var now = Interlocked.Increment(ref open);
            InterlockedMax(ref mostOpen, now);
            tx.Produce(topic, new Message<string, string> { Key = "order-" + request, Value = "placed" });
            await Task.Delay(50, ct); // the request's own work, with its transaction open
            Interlocked.Decrement(ref open);
        })));

        var visible = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, TimeSpan.FromSeconds(60), topic);
        visible.Select(r => r.Key).Should().HaveCount(40).And.OnlyHaveUniqueItems();
        mostOpen.Should().BeInRange(2, 4, "transactions overlap, never more than the pool's size");
    }

    [SkippableFact]
    public async Task RealBroker_a_restarted_instance_fences_every_slot_of_its_previous_incarnation()
    {
        var servers = broker.RequireBroker();
        var topic = (await broker.CreateTopicsAsync(1, "pool-zombie"))[0];
        var prefix = KafkaTxHost.UniqueName("pool-restart");
        await using var zombie = PoolApp(servers, prefix, 3);
        var old = zombie.GetRequiredService<ITransactionalUnitOfWorkPool>();
        await old.InitializeAsync();

        await using var restarted = PoolApp(servers, prefix, 3);
        await restarted.GetRequiredService<ITransactionalUnitOfWorkPool>().InitializeAsync();

        // Each slot on its own: the pool hands out the most recently used slot first, so calls through it would try
        // the same slot again and again. A fenced producer learns it from the coordinator (AddPartitionsToTxn or
        // EndTxn: INVALID_PRODUCER_EPOCH before Kafka 2.7, PRODUCER_FENCED since), so each slot's transaction fails.
        var slots = ((KafkaTx.Pooling.TransactionalUnitOfWorkPool)old).CreatedSlots;
        slots.Select(s => s.TransactionalId).Should().Equal(old.TransactionalIds);
        foreach (var slot in slots)
        {
            var failure = await slot.Awaiting(u => u.ExecuteAsync((tx, _) =>
            {
                tx.Produce(topic, new Message<string, string> { Key = "zombie", Value = "must not be visible" });
                return ValueTask.CompletedTask;
            })).Should().ThrowAsync<KafkaTransactionException>();
            failure.Which.Kind.Should().Be(TransactionErrorKind.Fenced, slot.TransactionalId);
            slot.State.Should().Be(TransactionState.Fenced);
        }

        TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, TimeSpan.FromSeconds(60), topic).Should().BeEmpty();
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
