using Confluent.Kafka;
using KafkaTx.Processing;
using KafkaTx.Telemetry;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing;

/// <summary>The processor's parts on their own: where committed offsets come from, attempts, rewinds, rebalances.</summary>
public class ProcessorPartsTests
{
    private static ProcessorTelemetry Telemetry() =>
        new("orders", "group", "tx-orders", new KafkaTxInstrumentation(), NullLogger.Instance, TimeProvider.System);

    [Fact]
    public async Task An_open_batch_commits_per_partition_the_offset_after_the_last_record_handled()
    {
        await using var services = new ServiceCollection().AddScoped<NoOpHandler>().BuildServiceProvider();
        await using var batch = OpenBatch<string, string>.Open(services.GetRequiredService<IServiceScopeFactory>(), 0, null, []);

        batch.AddHandled(new RecordKey(P0, 5));
        batch.AddHandled(new RecordKey(P1, 9));
        batch.AddHandled(new RecordKey(P0, 7)); // a gap: offset 6 was a transaction marker
        batch.DeadLettered(new RecordKey(P1, 10), "in.dlt");

        batch.NextOffsets().Should().BeEquivalentTo([new TopicPartitionOffset(P0, 8), new TopicPartitionOffset(P1, 11)]);
        batch.Partitions().Should().BeEquivalentTo([P0, P1]);
        batch.Count.Should().Be(4);
        batch.OnlyDeadLetterTopic.Should().BeNull("the batch holds more than the poison record");
    }

    [Fact]
    public async Task A_batch_holding_only_a_dead_lettered_record_names_its_dead_letter_topic()
    {
        await using var services = new ServiceCollection().AddScoped<NoOpHandler>().BuildServiceProvider();
        await using var batch = OpenBatch<string, string>.Open(services.GetRequiredService<IServiceScopeFactory>(), 0, null, []);

        batch.NextOffsets().Should().BeEmpty("no record was handled, so no offset is sent");
        batch.DeadLettered(new RecordKey(P0, 3), "in.dlt");

        batch.OnlyDeadLetterTopic.Should().Be("in.dlt");
    }

    [Fact]
    public async Task A_batch_is_due_when_full_old_near_the_transaction_timeout_or_isolating_a_suspect()
    {
        var clock = new ManualClock();
        var options = new TransactionalProcessorOptions { Topics = ["in"], GroupId = "group", MaxBatchSize = 3, MaxBatchDuration = TimeSpan.FromSeconds(10) };
        var producer = new KafkaTransactionsOptions { TransactionTimeout = TimeSpan.FromSeconds(16) };
        var schedule = new BatchSchedule(options, producer, clock, Telemetry());
        var attempts = new RecordAttempts();
        await using var services = new ServiceCollection().AddScoped<NoOpHandler>().BuildServiceProvider();
        await using var batch = OpenBatch<string, string>.Open(services.GetRequiredService<IServiceScopeFactory>(), clock.GetTimestamp(), null, []);

        batch.AddHandled(new RecordKey(P0, 1));
        schedule.IsDue(batch, clock.GetTimestamp(), attempts).Should().BeFalse();
        schedule.ConsumeTimeout(batch, clock.GetTimestamp()).Should().Be(BatchSchedule.IdlePoll);

        attempts.Isolate([new RecordKey(P0, 1), new RecordKey(P0, 2)]);
        schedule.IsDue(batch, clock.GetTimestamp(), attempts).Should().BeTrue("a suspect of a refused batch commits on its own");
        attempts.Committed([new RecordKey(P0, 1), new RecordKey(P0, 2)]);

        batch.AddHandled(new RecordKey(P0, 2));
        batch.AddHandled(new RecordKey(P0, 3));
        schedule.IsDue(batch, clock.GetTimestamp(), attempts).Should().BeTrue("MaxBatchSize records");

        await using var young = OpenBatch<string, string>.Open(services.GetRequiredService<IServiceScopeFactory>(), clock.GetTimestamp(), null, []);
        clock.Advance(TimeSpan.FromSeconds(8));
        schedule.IsDue(young, clock.GetTimestamp(), attempts).Should().BeTrue("half the transaction timeout comes before MaxBatchDuration here");
        schedule.Outlived(young).Should().BeFalse();
        clock.Advance(TimeSpan.FromSeconds(6.3));
        schedule.Outlived(young).Should().BeFalse("14.3 s: before the last tenth of the 16 s timeout, kept for the commit");
        clock.Advance(TimeSpan.FromSeconds(0.1));
        schedule.Outlived(young).Should().BeTrue("14.4 s: the unit would no longer send the commit");
        clock.Advance(TimeSpan.FromSeconds(1.6));
        schedule.ConsumeTimeout(young, clock.GetTimestamp()).Should().Be(TimeSpan.Zero);
        schedule.ConsumeTimeout<string, string>(null, clock.GetTimestamp()).Should().Be(BatchSchedule.IdlePoll);
    }

    [Fact]
    public void Record_attempts_count_per_record_and_isolate_the_records_of_a_refused_batch_until_they_commit()
    {
        var attempts = new RecordAttempts();
        var first = new RecordKey(P0, 1);
        var second = new RecordKey(P0, 2);

        attempts.Of(first).Should().BeNull();
        attempts.Failed(first, new InvalidOperationException("one")).Should().Be(1);
        attempts.Failed(first, new InvalidOperationException("two")).Should().Be(2);
        attempts.Of(first)!.LastError.Message.Should().Be("two");

        attempts.Isolate([first, second]);
        attempts.IsIsolating(first).Should().BeTrue();
        attempts.IsIsolating(new RecordKey(P0, 3)).Should().BeFalse("past the refused batch, batches grow again");
        attempts.IsIsolating(new RecordKey(P1, 1)).Should().BeFalse();

        attempts.Committed([first]);
        attempts.Of(first).Should().BeNull();
        attempts.IsIsolating(second).Should().BeTrue("the suspects after the committed record are still isolated");
        attempts.Committed([second]);
        attempts.IsIsolating(second).Should().BeFalse();
    }

    [Fact]
    public void Record_attempts_of_a_partition_that_is_gone_are_forgotten()
    {
        var attempts = new RecordAttempts();
        attempts.Failed(new RecordKey(P0, 1), new InvalidOperationException());
        attempts.Failed(new RecordKey(P1, 1), new InvalidOperationException());
        attempts.Isolate([new RecordKey(P0, 1), new RecordKey(P0, 2)]);

        attempts.Forget(new HashSet<TopicPartition> { P0 });

        attempts.Of(new RecordKey(P0, 1)).Should().BeNull();
        attempts.IsIsolating(new RecordKey(P0, 2)).Should().BeFalse();
        attempts.Of(new RecordKey(P1, 1)).Should().NotBeNull();
    }

    [Fact]
    public void The_rewinder_seeks_to_its_own_commits_then_the_groups_then_the_first_record_it_consumed()
    {
        var broker = new FakeBroker();
        broker.CommitGroupOffsets([new TopicPartitionOffset(P1, 40)]);
        var p2 = new TopicPartition("in", 2);
        var p3 = new TopicPartition("in", 3);
        var consumer = Assigned(broker, P0, P1, p2, p3);
        var rewinder = new Rewinder(Telemetry());
        rewinder.Committed([new TopicPartitionOffset(P0, 12)]);
        rewinder.Consumed(p2, 7);
        rewinder.Consumed(p2, 8); // not the first

        rewinder.Require();
        rewinder.TryRewind(consumer).Should().BeTrue();

        rewinder.IsPending.Should().BeFalse();
        consumer.CommittedQueries.Should().ContainSingle().Which.Should().BeEquivalentTo([P1, p2, p3], "only partitions not committed here are asked for");
        broker.EventsSnapshot().Where(e => e.StartsWith("seek:", StringComparison.Ordinal)).Should().BeEquivalentTo(
            ["seek:0@12", "seek:1@40", "seek:2@7"], "a partition neither committed nor read stays where it is");
    }

    [Fact]
    public void A_rewind_that_cannot_read_the_groups_offsets_stays_pending()
    {
        var consumer = Assigned(new FakeBroker(), P0);
        consumer.FailCommittedQueries = true;
        var rewinder = new Rewinder(Telemetry());

        rewinder.Require();

        rewinder.TryRewind(consumer).Should().BeFalse();
        rewinder.IsPending.Should().BeTrue();
    }

    [Fact]
    public async Task While_holding_for_the_coordinator_the_rewinder_polls_drops_what_it_reads_and_rewinds_there_once_the_coordinator_answers()
    {
        var broker = new FakeBroker();
        var consumer = Assigned(broker, P0);
        broker.Append("in", 0, "k5", "v5");
        consumer.FailCommittedQueries = true;
        var rewinder = new Rewinder(Telemetry());
        rewinder.GroupCoordinatorUnreachable();
        rewinder.Require();

        rewinder.TryRewind(consumer).Should().BeFalse("the coordinator does not answer");
        await rewinder.WaitToRetryAsync(consumer, TimeProvider.System, CancellationToken.None);

        consumer.Position(P0).Value.Should().Be(1, "the wait was a poll (the consumer stays in the group), and it read the record");
        rewinder.IsPending.Should().BeTrue("what the poll read is dropped: the rewind is still due");
        rewinder.Hold.IsHeld.Should().BeTrue();
        consumer.FailCommittedQueries = false;
        rewinder.TryRewind(consumer).Should().BeTrue();
        rewinder.Hold.IsHeld.Should().BeFalse("the coordinator answered");
        broker.EventsSnapshot().Should().Contain("seek:0@0", "nothing committed there: back to the record the poll read and dropped");
    }

    [Fact]
    public void A_hold_with_no_partition_assigned_ends_at_the_rewind_since_there_is_nothing_to_hold()
    {
        var consumer = Assigned(new FakeBroker());
        consumer.FailCommittedQueries = true;
        var rewinder = new Rewinder(Telemetry());
        rewinder.GroupCoordinatorUnreachable();
        rewinder.Require();

        rewinder.TryRewind(consumer).Should().BeTrue();

        rewinder.IsPending.Should().BeFalse();
        rewinder.Hold.IsHeld.Should().BeFalse("a hold left over would report Degraded for ever, and let later batches run while 'held'");
    }

    [Fact]
    public void A_revoke_commits_the_open_batch_and_forgets_the_partitions()
    {
        var batch = new FakeBatchControl { IsOpen = true };
        var (consumer, rewinder, attempts) = Rebalancing(batch);
        rewinder.Committed([new TopicPartitionOffset(P0, 5)]);
        attempts.Failed(new RecordKey(P0, 5), new InvalidOperationException());

        consumer.Rebalance("revoke", P0);
        consumer.Consume(TimeSpan.Zero);

        batch.Calls.Should().Equal("commit");
        batch.Left.Should().Equal([P0], "what the loop set on a revoked partition (a pause) is undone");
        attempts.Of(new RecordKey(P0, 5)).Should().BeNull();
        rewinder.IsPending.Should().BeFalse();
    }

    [Fact]
    public void A_revoke_whose_commit_fails_aborts_the_open_batch()
    {
        var batch = new FakeBatchControl { IsOpen = true, CommitFails = true };
        var (consumer, _, _) = Rebalancing(batch);

        consumer.Rebalance("revoke", P0);
        consumer.Consume(TimeSpan.Zero);

        batch.Calls.Should().Equal("commit", "abort: the commit on revoke failed");
    }

    [Fact]
    public void A_revoke_whose_commit_throws_something_unexpected_aborts_before_the_partitions_move_and_stops_the_processor()
    {
        // User code under the commit (a handler that cannot be built, a scoped service failing to dispose) threw
        // something else than a Kafka error: it escaped the callback, so the partitions moved with the batch open.
        var batch = new FakeBatchControl { IsOpen = true, CommitFailure = new NotSupportedException("a scoped service failed") };
        var status = new ProcessorStatus(TestUnits.Create().Unit, Telemetry());
        status.Running();
        var (consumer, _, _) = Rebalancing(batch, status);

        consumer.Rebalance("revoke", P0);
        consumer.Invoking(c => c.Consume(TimeSpan.Zero)).Should().NotThrow("nothing leaves a rebalance callback");

        batch.Calls.Should().Equal("commit", "abort: the commit on revoke failed");
        status.State.Should().Be(ProcessorState.Faulted, "as outside a callback, the processor stops on it");
        status.Failure.Should().BeOfType<NotSupportedException>();
    }

    [Fact]
    public void A_loss_whose_abort_throws_stays_in_the_callback_requires_a_rewind_and_stops_the_processor()
    {
        var batch = new FakeBatchControl { IsOpen = true, AbortFailure = new NotSupportedException("a scoped service failed") };
        var status = new ProcessorStatus(TestUnits.Create().Unit, Telemetry());
        status.Running();
        var (consumer, rewinder, _) = Rebalancing(batch, status);

        consumer.Rebalance("lost", P0);
        consumer.Invoking(c => c.Consume(TimeSpan.Zero)).Should().NotThrow("nothing leaves a rebalance callback");

        rewinder.IsPending.Should().BeTrue();
        status.State.Should().Be(ProcessorState.Faulted, "the shutdown then aborts whatever is still open");
    }

    [Fact]
    public void A_revoke_never_commits_for_a_processor_that_is_not_running()
    {
        var batch = new FakeBatchControl { IsOpen = true, IsRunning = false };
        var (consumer, _, _) = Rebalancing(batch);

        consumer.Rebalance("revoke", P0);
        consumer.Consume(TimeSpan.Zero);

        batch.Calls.Should().BeEmpty();
        batch.Left.Should().Equal([P0], "a stopping processor's partitions leave unpaused too");
    }

    [Fact]
    public void A_loss_aborts_the_open_batch_never_commits_and_requires_a_rewind()
    {
        var batch = new FakeBatchControl { IsOpen = true };
        var (consumer, rewinder, _) = Rebalancing(batch);

        consumer.Rebalance("lost", P0);
        consumer.Consume(TimeSpan.Zero);

        batch.Calls.Should().Equal("abort: partitions were lost");
        batch.Left.Should().Equal([P0], "what the loop set on a lost partition (a pause) is undone");
        rewinder.IsPending.Should().BeTrue();
    }

    [Fact]
    public void A_loss_with_no_open_batch_still_requires_a_rewind()
    {
        var batch = new FakeBatchControl();
        var (consumer, rewinder, _) = Rebalancing(batch);

        consumer.Rebalance("lost", P0);
        consumer.Consume(TimeSpan.Zero);

        batch.Calls.Should().BeEmpty();
        rewinder.IsPending.Should().BeTrue();
    }

    private static FakeConsumer Assigned(FakeBroker broker, params TopicPartition[] partitions)
    {
        var consumer = new FakeConsumer(broker, new ConsumerEventHandlers { PartitionsAssigned = _ => { }, PartitionsRevoked = _ => { }, PartitionsLost = _ => { }, Error = _ => { }, Log = _ => { } });
        consumer.Rebalance("assign", partitions);
        consumer.Consume(TimeSpan.Zero);
        return consumer;
    }

    private static (FakeConsumer Consumer, Rewinder Rewinder, RecordAttempts Attempts) Rebalancing(FakeBatchControl batch, ProcessorStatus? status = null)
    {
        var telemetry = Telemetry();
        var rewinder = new Rewinder(telemetry);
        var attempts = new RecordAttempts();
        status ??= new ProcessorStatus(TestUnits.Create().Unit, telemetry);
        var consumer = new FakeConsumer(new FakeBroker(), new RebalanceHandler(batch, rewinder, attempts, status, telemetry).EventHandlers());
        consumer.Rebalance("assign", P0);
        consumer.Consume(TimeSpan.Zero);
        return (consumer, rewinder, attempts);
    }

    private sealed class FakeBatchControl : IOpenBatchControl
    {
        public List<string> Calls { get; } = [];

        public bool IsOpen { get; set; }

        public bool IsRunning { get; set; } = true;

        public bool CommitFails { get; set; }

        public Exception? CommitFailure { get; set; }

        public Exception? AbortFailure { get; set; }

        public Task CommitAsync(CancellationToken cancellationToken)
        {
            Calls.Add("commit");
            return CommitFailure is not null ? Task.FromException(CommitFailure)
                : CommitFails ? Task.FromException(new KafkaException(ErrorCode.Local_Transport)) : Task.CompletedTask;
        }

        public Task AbortAndRewindAsync(string reason)
        {
            Calls.Add("abort: " + reason);
            IsOpen = false;
            return AbortFailure is not null ? Task.FromException(AbortFailure) : Task.CompletedTask;
        }

        public List<TopicPartition> Left { get; } = [];

        public void Leaving(IEnumerable<TopicPartition> partitions) => Left.AddRange(partitions);
    }

    private sealed class NoOpHandler : ITransactionalHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
