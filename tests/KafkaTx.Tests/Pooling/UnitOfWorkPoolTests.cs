using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaTx.Tests.Pooling;

/// <summary>The pool of units of work: stable per-slot transactional.ids, leasing, waiting, fencing, health.</summary>
public class UnitOfWorkPoolTests
{
    private static (ServiceProvider Provider, FakeClientFactory Factory) Build(int size)
    {
        var factory = new FakeClientFactory();
        var services = new ServiceCollection().AddLogging();
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "fake:9092";
            o.TransactionalIdPrefix = "checkout";
            o.InstanceId = "pod-3";
        }).UseClientFactory(factory).AddUnitOfWorkPool(size).AddHealthChecks();
        return (services.BuildServiceProvider(), factory);
    }

    private static ValueTask WriteOne(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("orders", new Message<string, string> { Key = "k", Value = "v" });
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Each_slot_has_a_stable_transactional_id_and_InitializeAsync_initializes_them_all()
    {
        var (provider, factory) = Build(3);
        await using var _ = provider;
        var pool = provider.GetRequiredService<ITransactionalUnitOfWorkPool>();

        await pool.InitializeAsync();

        pool.Size.Should().Be(3);
        pool.TransactionalIds.Should().Equal("checkout-pod-3-slot-0", "checkout-pod-3-slot-1", "checkout-pod-3-slot-2");
        factory.Configs.Select(c => c.TransactionalId).Should().Equal(pool.TransactionalIds);
        factory.Producers.Should().OnlyContain(p => p.Calls.Contains("Init"));
        provider.GetRequiredKeyedService<ITransactionalUnitOfWorkPool>(string.Empty).Should().BeSameAs(pool);
    }

    [Fact]
    public async Task At_most_size_transactions_are_open_at_once_and_callers_beyond_wait_for_an_idle_slot()
    {
        var (provider, factory) = Build(2);
        await using var _ = provider;
        var pool = provider.GetRequiredService<ITransactionalUnitOfWorkPool>();
        var open = 0;
        var mostOpen = 0;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var callers = Enumerable.Range(0, 5).Select(_ => pool.ExecuteAsync(async (scope, ct) =>
        {
            var now = Interlocked.Increment(ref open);
            InterlockedMax(ref mostOpen, now);
            await release.Task;
            await WriteOne(scope, ct);
            Interlocked.Decrement(ref open);
        })).ToList();
        await ProcessingUntil(() => Volatile.Read(ref open) == 2, "two transactions are open");
        var waiting = callers.Count(c => !c.IsCompleted);
        release.SetResult();
        await Task.WhenAll(callers);

        waiting.Should().Be(5);
        mostOpen.Should().Be(2);
        factory.Producers.Should().HaveCount(2, "slots are created as needed, never more than the size");
        factory.Producers.Sum(p => p.Committed.Count).Should().Be(5);
    }

    [Fact]
    public async Task A_caller_waiting_for_a_slot_can_cancel()
    {
        var (provider, _) = Build(1);
        await using var __ = provider;
        var pool = provider.GetRequiredService<ITransactionalUnitOfWorkPool>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var busy = pool.ExecuteAsync(async (scope, ct) => await release.Task);
        using var cancel = new CancellationTokenSource();

        var waiting = pool.ExecuteAsync(WriteOne, cancel.Token);
        await cancel.CancelAsync();

        await waiting.Awaiting(t => t).Should().ThrowAsync<OperationCanceledException>();
        release.SetResult();
        await busy;
        await pool.ExecuteAsync(WriteOne); // the slot is free again
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65)]
    public void A_size_out_of_range_is_refused_when_registered_and_says_why(int size)
    {
        var builder = new ServiceCollection().AddKafkaTransactions(o => o.TransactionalId = "x");

        var act = () => builder.AddUnitOfWorkPool(size);

        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*from 1 to 64 slots*callers wait for an idle slot*");
    }

    [Fact]
    public async Task A_fenced_slot_makes_the_health_check_unhealthy()
    {
        var (provider, factory) = Build(2);
        await using var _ = provider;
        var pool = provider.GetRequiredService<ITransactionalUnitOfWorkPool>();
        await pool.InitializeAsync();
        factory.Producers[1].CommitFailures.Enqueue(KafkaErrors.Fenced());
        factory.Producers[0].CommitFailures.Enqueue(KafkaErrors.Fenced());

        await pool.Awaiting(p => p.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>();

        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        report.Entries["kafkatx"].Status.Should().Be(HealthStatus.Unhealthy);
        report.Entries["kafkatx"].Description.Should().Contain("is Fenced");
    }

    [Fact]
    public async Task A_restarted_instance_fences_every_slot_of_its_previous_incarnation_on_the_in_memory_cluster()
    {
        var kafka = new InMemoryKafkaCluster();
        ServiceProvider App()
        {
            var services = new ServiceCollection();
            services.AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "in-memory";
                o.TransactionalIdPrefix = "checkout";
                o.InstanceId = "pod-3";
            }).UseInMemoryKafka(kafka).AddUnitOfWorkPool(3);
            return services.BuildServiceProvider();
        }

        await using var zombie = App();
        var old = zombie.GetRequiredService<ITransactionalUnitOfWorkPool>();
        await old.InitializeAsync();
        await using var restarted = App();
        await restarted.GetRequiredService<ITransactionalUnitOfWorkPool>().InitializeAsync();

        // Each slot on its own: the pool hands out the most recently used slot first, so calls through it would try
        // the same slot again and again.
        var slots = ((KafkaTx.Pooling.TransactionalUnitOfWorkPool)old).CreatedSlots;
        slots.Select(s => s.TransactionalId).Should().Equal(old.TransactionalIds);
        var fencedBy = new List<string>();
        foreach (var slot in slots)
        {
            var failure = await slot.Awaiting(u => u.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>();
            failure.Which.Kind.Should().Be(TransactionErrorKind.Fenced, slot.TransactionalId);
            fencedBy.Add(failure.Which.Error.Reason);
        }

        var refused = await old.Awaiting(p => p.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>().WithMessage("*Fenced*", "the pool then refuses at once");
        refused.Which.Kind.Should().Be(TransactionErrorKind.Fenced, "the pool's refusal carries the kind, as a fenced unit's does");
        fencedBy.Should().Contain(refused.Which.Error.Reason, "it carries the error that fenced a slot");
        kafka.ReadTopic("orders").Should().BeEmpty("no zombie slot could commit");
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }

    private static Task ProcessingUntil(Func<bool> condition, string what) => Processing.ProcessorHarness.Until(condition, what);
}
