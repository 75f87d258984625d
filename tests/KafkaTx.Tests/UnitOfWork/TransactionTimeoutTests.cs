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

    [Theory]
    [InlineData(60_000, 54_900)] // the margin kept for the commit: 5 s at most
    [InlineData(4_000, 3_550)]   // a tenth of the timeout below 50 s
    public async Task A_transaction_before_the_commit_margin_commits(int timeoutMs, int ageMs)
    {
        var clock = new ManualClock();
        var (unit, producer) = await TestUnits.CreateReady(o => o.TransactionTimeout = TimeSpan.FromMilliseconds(timeoutMs), clock);
        unit.BeginTransaction();
        unit.Produce("processed-orders", new Message<string, string> { Value = "order-1" });
        clock.Advance(TimeSpan.FromMilliseconds(ageMs));

        await unit.CommitAsync();

        producer.Committed.Should().ContainSingle();
    }

    [Theory]
    [InlineData(60_000, 55_000)]
    [InlineData(60_000, 59_000)]
    [InlineData(4_000, 3_600)]
    public async Task A_commit_that_would_start_in_the_last_tenth_of_the_timeout_is_not_sent_the_transaction_aborts(int timeoutMs, int ageMs)
    {
        // Sent that late, the commit could reach the coordinator after it aborted the transaction for its age and
        // bumped the producer's epoch: the producer would be fenced, where an abort only costs a retry.
        var clock = new ManualClock();
        var (unit, producer) = await TestUnits.CreateReady(o => o.TransactionTimeout = TimeSpan.FromMilliseconds(timeoutMs), clock);
        unit.BeginTransaction();
        unit.Produce("processed-orders", new Message<string, string> { Value = "order-1" });
        clock.Advance(TimeSpan.FromMilliseconds(ageMs));

        var failure = await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Abortable);
        failure.Which.Outcome.Should().Be(TransactionOutcome.NotCommitted);
        failure.Which.Message.Should().Contain("too close to TransactionTimeout");
        producer.CallCount("Commit").Should().Be(0);
        producer.Committed.Should().BeEmpty();
        unit.State.Should().Be(TransactionState.Ready);
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
