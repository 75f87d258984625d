using Confluent.Kafka;
using KafkaTx.Tests.Fakes;

namespace KafkaTx.Tests.UnitOfWork;

public class TransactionTimeoutTests
{
    [Fact]
    public async Task A_transaction_older_than_the_transaction_timeout_is_aborted_instead_of_committed()
    {
        var clock = new ManualClock();
        var (unit, producer) = await TestUnits.CreateReady(o => o.TransactionTimeout = TimeSpan.FromSeconds(60), clock);
        unit.BeginTransaction();
        unit.Produce("processed-orders", new Message<string, string> { Value = "order-1" });
        clock.Advance(TimeSpan.FromSeconds(61));

        var failure = await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Abortable);
        failure.Which.Message.Should().Contain("61000 ms").And.Contain("transaction.timeout.ms").And.Contain("aborted instead of committed");
        producer.CallCount("Commit").Should().Be(0);
        producer.CallCount("Abort").Should().Be(1);
        producer.Committed.Should().BeEmpty();
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task A_transaction_just_under_the_timeout_commits()
    {
        var clock = new ManualClock();
        var (unit, producer) = await TestUnits.CreateReady(o => o.TransactionTimeout = TimeSpan.FromSeconds(60), clock);
        unit.BeginTransaction();
        unit.Produce("processed-orders", new Message<string, string> { Value = "order-1" });
        clock.Advance(TimeSpan.FromSeconds(59));

        await unit.CommitAsync();

        producer.Committed.Should().ContainSingle();
    }

    [Fact]
    public async Task ExecuteAsync_runs_expired_work_again_in_a_fresh_transaction()
    {
        var clock = new ManualClock();
        var (unit, producer) = await TestUnits.CreateReady(o => o.TransactionTimeout = TimeSpan.FromSeconds(10), clock);
        var runs = 0;

        await unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("t", new Message<string, string> { Value = "run-" + ++runs });
            if (runs == 1)
            {
                clock.Advance(TimeSpan.FromSeconds(11)); // the first run is too slow
            }

            return ValueTask.CompletedTask;
        });

        runs.Should().Be(2);
        producer.Committed.Select(r => r.ValueText).Should().Equal("run-2");
        producer.Aborted.Select(r => r.ValueText).Should().Equal("run-1");
    }

    [Fact]
    public async Task Sending_offsets_in_an_expired_transaction_fails_fast()
    {
        var clock = new ManualClock();
        var (unit, producer) = await TestUnits.CreateReady(o => o.TransactionTimeout = TimeSpan.FromSeconds(10), clock);
        unit.BeginTransaction();
        clock.Advance(TimeSpan.FromSeconds(10));

        var failure = await unit.Awaiting(u => u.SendOffsetsAsync([new TopicPartitionOffset("in", 0, 1)], new FakeGroupMetadata())).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Abortable);
        producer.CallCount("SendOffsets").Should().Be(0);
    }
}
