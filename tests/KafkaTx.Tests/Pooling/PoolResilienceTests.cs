using Confluent.Kafka;
using KafkaTx.Pooling;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaTx.Tests.Pooling;

/// <summary>
/// The pool never loses capacity and never hands out a slot it cannot use: a slot that failed to be created returns
/// its permit, a faulted slot is reset before reuse, a commit left unknown is settled by the slot's next call, and a
/// fenced slot stops the whole pool (its other slots' ids belong to the newer instance too). Health follows the slots.
/// </summary>
public class PoolResilienceTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private static (ServiceProvider Provider, FakeClientFactory Factory, ITransactionalUnitOfWorkPool Pool) Build(
        int size, Action<KafkaTransactionsOptions>? configure = null, Action<FakeProducer>? setup = null)
    {
        var factory = new FakeClientFactory { Setup = setup };
        var services = new ServiceCollection().AddLogging();
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "fake:9092";
            o.TransactionalIdPrefix = "checkout";
            o.InstanceId = "pod-3";
            o.Retry.BaseDelay = TimeSpan.Zero;
            configure?.Invoke(o);
        }).UseClientFactory(factory).AddUnitOfWorkPool(size).AddHealthChecks();
        var provider = services.BuildServiceProvider();
        return (provider, factory, provider.GetRequiredService<ITransactionalUnitOfWorkPool>());
    }

    private static ValueTask WriteOne(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("orders", new Message<string, string> { Key = "k", Value = "v" });
        return ValueTask.CompletedTask;
    }

    private static async Task<HealthReportEntry> HealthAsync(IServiceProvider provider) =>
        (await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["kafkatx"];

    [Fact]
    public async Task A_slot_that_cannot_be_created_returns_its_permit_and_later_calls_are_served()
    {
        var failures = 3;
        var (provider, factory, pool) = Build(2, setup: _ =>
        {
            if (Interlocked.Decrement(ref failures) >= 0)
            {
                throw new KafkaException(new Error(ErrorCode.Local_InvalidArg, "No such configuration property: \"sasl.mechanismz\""));
            }
        });
        await using var _ = provider;

        for (var i = 0; i < 3; i++)
        {
            await pool.Awaiting(p => p.ExecuteAsync(WriteOne).WaitAsync(Deadline)).Should().ThrowAsync<KafkaException>().WithMessage("*sasl.mechanismz*");
        }

        await pool.ExecuteAsync(WriteOne).WaitAsync(Deadline); // with a leaked permit per failure, this would wait for ever
        await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => pool.ExecuteAsync(WriteOne))).WaitAsync(Deadline);
        factory.Producers.Sum(p => p.Committed.Count).Should().Be(3);
    }

    [Fact]
    public async Task A_faulted_slot_is_reset_before_the_pool_hands_it_out_again()
    {
        var (provider, factory, pool) = Build(1, o => o.MaxProducerReplacements = 0);
        await using var _ = provider;
        await pool.InitializeAsync();
        factory.Producers[0].CommitFailures.Enqueue(KafkaErrors.Fatal());
        (await pool.Awaiting(p => p.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>()).Which.Kind.Should().Be(TransactionErrorKind.Fatal);
        ((TransactionalUnitOfWorkPool)pool).CreatedSlots[0].State.Should().Be(TransactionState.Faulted);

        await pool.ExecuteAsync(WriteOne).WaitAsync(Deadline);

        factory.Producers.Should().HaveCount(2, "the faulted slot got a new producer");
        factory.Producers[1].Committed.Should().ContainSingle();
    }

    [Fact]
    public async Task A_slot_whose_commit_outcome_is_unknown_settles_it_and_serves_the_next_call()
    {
        var unknown = 1;
        var (provider, factory, pool) = Build(1, o => o.CommitTimeout = TimeSpan.FromMilliseconds(100), setup: p => p.CommitsTimeOutWhile(() => Volatile.Read(ref unknown) == 1));
        await using var _ = provider;
        (await pool.Awaiting(p => p.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>()).Which.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown);
        Volatile.Write(ref unknown, 0);

        await pool.ExecuteAsync(WriteOne).WaitAsync(Deadline);

        factory.Producers.Should().ContainSingle().Which.Committed.Should().HaveCount(2, "the resumed commit and the new one");
    }

    [Fact]
    public async Task Calls_go_to_the_least_recently_used_slot_so_every_slot_takes_its_turn()
    {
        var (provider, _, pool) = Build(3);
        await using var __ = provider;
        await pool.InitializeAsync();
        var ids = new List<string>();

        for (var i = 0; i < 6; i++)
        {
            await pool.ExecuteAsync((scope, ct) =>
            {
                ids.Add(scope.TransactionalId);
                return WriteOne(scope, ct);
            });
        }

        ids.Should().Equal(pool.TransactionalIds.Concat(pool.TransactionalIds));
    }

    [Fact]
    public async Task Once_a_slot_is_fenced_the_pool_refuses_every_call_and_creates_or_initializes_no_other_slot()
    {
        var (provider, factory, pool) = Build(3);
        await using var _ = provider;
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inside = 0;
        var held = Enumerable.Range(0, 2).Select(_ => pool.ExecuteAsync(async (scope, ct) =>
        {
            Interlocked.Increment(ref inside);
            await hold.Task;
            await WriteOne(scope, ct);
        })).ToList();
        await Processing.ProcessorHarness.Until(() => Volatile.Read(ref inside) == 2, "two slots are in use");
        factory.Producers.Should().HaveCount(2);
        factory.Producers[1].CommitFailures.Enqueue(KafkaErrors.Fenced()); // a newer instance took this instance's ids
        hold.SetResult();
        var outcomes = await Task.WhenAll(held.Select(async c =>
        {
            try
            {
                await c;
                return (TransactionErrorKind?)null;
            }
            catch (KafkaTransactionException e)
            {
                return e.Kind;
            }
        }));
        outcomes.Should().BeEquivalentTo(new TransactionErrorKind?[] { null, TransactionErrorKind.Fenced });

        var later = Enumerable.Range(0, 3).Select(_ => pool.ExecuteAsync(WriteOne)).ToList();
        foreach (var call in later)
        {
            (await call.Awaiting(c => c.WaitAsync(Deadline)).Should().ThrowAsync<KafkaTransactionException>().WithMessage("*Fenced*")).Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        }

        (await pool.Awaiting(p => p.InitializeAsync()).Should().ThrowAsync<KafkaTransactionException>().WithMessage("*Fenced*")).Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        factory.Producers.Should().HaveCount(2, "creating or initializing another slot would fence the newer instance's slot");
        factory.Producers.Sum(p => p.CallCount("Init")).Should().Be(2);
        (await HealthAsync(provider)).Status.Should().Be(HealthStatus.Unhealthy);
    }

    [Fact]
    public async Task A_slot_whose_commit_outcome_awaits_settlement_makes_the_pool_Degraded_until_it_is_settled()
    {
        var unknown = 1;
        var (provider, _, pool) = Build(2, o => o.CommitTimeout = TimeSpan.FromMilliseconds(100), setup: p => p.CommitsTimeOutWhile(() => Volatile.Read(ref unknown) == 1));
        await using var __ = provider;
        await pool.InitializeAsync();
        await pool.Awaiting(p => p.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>();

        var pending = await HealthAsync(provider);
        Volatile.Write(ref unknown, 0);
        await pool.ExecuteAsync(WriteOne);
        await pool.ExecuteAsync(WriteOne); // least recently used first: the second call reaches the pending slot
        var settled = await HealthAsync(provider);

        pending.Status.Should().Be(HealthStatus.Degraded);
        pending.Description.Should().Contain("unknown outcome");
        settled.Status.Should().Be(HealthStatus.Healthy);
    }

    [Fact]
    public async Task A_faulted_slot_makes_the_pool_Unhealthy_until_the_pool_has_reset_it_and_it_commits_again()
    {
        var (provider, factory, pool) = Build(1, o => o.MaxProducerReplacements = 0);
        await using var _ = provider;
        await pool.InitializeAsync();
        factory.Producers[0].CommitFailures.Enqueue(KafkaErrors.Fatal());
        await pool.Awaiting(p => p.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>();

        var faulted = await HealthAsync(provider);
        await pool.ExecuteAsync(WriteOne).WaitAsync(Deadline);
        var healed = await HealthAsync(provider);

        faulted.Status.Should().Be(HealthStatus.Unhealthy);
        faulted.Description.Should().Contain("Faulted");
        healed.Status.Should().Be(HealthStatus.Healthy);
    }

    [Fact]
    public async Task Disposing_the_pool_waits_for_the_calls_in_flight_and_refuses_the_callers_waiting_for_a_slot()
    {
        var (provider, factory, pool) = Build(1);
        await using var _ = provider;
        var working = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = pool.ExecuteAsync(async (scope, ct) =>
        {
            working.SetResult();
            await release.Task;
            await WriteOne(scope, ct);
        });
        await working.Task.WaitAsync(Deadline);
        var waiting = pool.ExecuteAsync(WriteOne);

        var disposing = pool.DisposeAsync().AsTask();
        release.SetResult();

        await running.WaitAsync(Deadline);
        await disposing.WaitAsync(Deadline);
        await waiting.Awaiting(w => w.WaitAsync(Deadline)).Should().ThrowAsync<ObjectDisposedException>();
        factory.Producers.Should().ContainSingle().Which.Committed.Should().ContainSingle();
        factory.Producers[0].Overlaps.Should().BeEmpty();
    }

    [Fact]
    public async Task Disposing_the_pool_while_callers_race_for_new_slots_leaves_no_slot_undisposed()
    {
        // The window is between a caller's disposed check and its slot's creation: many rounds of callers racing a
        // disposal make it likely to be hit, and every slot ever created must end Disposed (its producer closed).
        for (var round = 0; round < 50; round++)
        {
            var (provider, _, pool) = Build(8);
            await using var _ = provider;
            using var start = new ManualResetEventSlim();
            var callers = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
            {
                start.Wait(Deadline);
                try
                {
                    await pool.ExecuteAsync(WriteOne);
                }
                catch (ObjectDisposedException)
                {
                    // refused: the pool was disposed first
                }
            })).ToArray();
            var disposal = Task.Run(async () =>
            {
                start.Wait(Deadline);
                await pool.DisposeAsync();
            });

            start.Set();
            await Task.WhenAll(callers).WaitAsync(Deadline);
            await disposal.WaitAsync(Deadline);

            var slots = ((TransactionalUnitOfWorkPool)pool).CreatedSlots;
            slots.Where(slot => slot.State != TransactionState.Disposed).Select(slot => $"{slot.TransactionalId}: {slot.State}")
                .Should().BeEmpty($"round {round}: a slot created while the pool was disposed must be disposed too");
        }
    }
}
