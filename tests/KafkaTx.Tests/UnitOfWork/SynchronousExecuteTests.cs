using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>Synchronous work gets everything ExecuteAsync gives asynchronous work: one transaction, abort on failure, runs again after abortable ones.</summary>
public class SynchronousExecuteTests
{
    private static readonly Message<string, string> Record = new() { Key = "task-1", Value = "created" };

    [Fact]
    public async Task Synchronous_work_commits_every_topic_together()
    {
        var (unit, factory) = TestUnits.Create();

        await unit.ExecuteAsync(tx =>
        {
            tx.Produce("task-events", Record);
            tx.Produce("audit-log", Record);
        });

        factory.Current.Calls.Should().Equal("Init", "Begin", "Produce:task-events", "Produce:audit-log", "Commit");
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task Synchronous_work_that_throws_is_aborted_and_its_exception_rethrown()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var boom = new InvalidDataException("payment declined");

        var act = () => unit.ExecuteAsync(tx =>
        {
            tx.Produce("payment-completed", Record);
            throw boom;
        });

        (await act.Should().ThrowAsync<InvalidDataException>()).Which.Should().BeSameAs(boom);
        producer.Committed.Should().BeEmpty();
        producer.Aborted.Should().ContainSingle(r => r.Topic == "payment-completed");
    }

    [Fact]
    public async Task Synchronous_work_runs_again_after_an_abortable_commit_failure_and_returns_the_committed_runs_result()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.CommitFailures.Enqueue(KafkaErrors.Abortable(ErrorCode.TransactionCoordinatorFenced));
        var runs = 0;

        var result = await unit.ExecuteAsync(tx =>
        {
            tx.Produce("task-events", Record);
            return ++runs;
        });

        result.Should().Be(2, "the result is the committed run's");
        producer.Calls.Should().ContainInOrder("Begin", "Commit", "Abort", "Begin", "Commit");
    }

    [Fact]
    public async Task A_cancelled_token_aborts_before_synchronous_work_runs()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        var ran = false;

        var act = () => unit.ExecuteAsync(_ => ran = true, cancelled.Token);

        await act.Should().ThrowAsync<OperationCanceledException>();
        ran.Should().BeFalse();
        producer.Committed.Should().BeEmpty();
    }

    [Fact]
    public async Task A_pool_runs_synchronous_work_in_memory_and_read_committed_readers_see_it()
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o => o.TransactionalId = "sync-pool").UseInMemoryKafka().AddUnitOfWorkPool(2);
        await using var provider = services.BuildServiceProvider();
        var pool = provider.GetRequiredService<ITransactionalUnitOfWorkPool>();

        await pool.ExecuteAsync(tx => tx.Produce("task-events", Record));

        provider.GetRequiredService<InMemoryKafkaCluster>().ReadTopic("task-events").Select(r => r.ValueText).Should().Equal("created");
    }
}
