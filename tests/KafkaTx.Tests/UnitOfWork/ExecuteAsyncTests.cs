using Confluent.Kafka;
using KafkaTx.Tests.Fakes;

namespace KafkaTx.Tests.UnitOfWork;

public class ExecuteAsyncTests
{
    private static ValueTask WriteTask(ITransactionScope scope, string id)
    {
        scope.Produce("task-events", new Message<string, string> { Key = id, Value = "created" });
        scope.Produce("audit-log", new Message<string, string> { Key = id, Value = "task_created" });
        scope.Produce("notification-queue", new Message<string, string> { Key = "user-456", Value = "task_assigned" });
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Initializes_on_first_use_and_commits_all_topics_together()
    {
        var (unit, factory) = TestUnits.Create();

        await unit.ExecuteAsync((scope, _) => WriteTask(scope, "task-123"));

        var producer = factory.Current;
        producer.Calls.Should().Equal("Init", "Begin", "Produce:task-events", "Produce:audit-log", "Produce:notification-queue", "Commit");
        producer.Committed.Select(r => r.Topic).Should().Equal("task-events", "audit-log", "notification-queue");
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task Returns_the_result_of_the_committed_run()
    {
        var (unit, _) = await TestUnits.CreateReady();

        var result = await unit.ExecuteAsync((scope, _) => ValueTask.FromResult(42));

        result.Should().Be(42);
    }

    [Fact]
    public async Task When_the_work_throws_the_transaction_is_aborted_and_the_original_exception_rethrown()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var boom = new InvalidDataException("payment declined");

        var act = () => unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("payment-completed", new Message<string, string> { Value = "p-1" });
            throw boom;
        });

        (await act.Should().ThrowAsync<InvalidDataException>()).Which.Should().BeSameAs(boom);
        producer.Committed.Should().BeEmpty();
        producer.Aborted.Should().ContainSingle(r => r.Topic == "payment-completed");
        producer.CallCount("Begin").Should().Be(1, "an application failure is not retried");
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task An_abortable_commit_failure_aborts_and_runs_the_work_again()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.CommitFailures.Enqueue(KafkaErrors.Abortable(ErrorCode.TransactionCoordinatorFenced));
        var runs = 0;

        await unit.ExecuteAsync((scope, _) =>
        {
            runs++;
            return WriteTask(scope, "task-" + runs);
        });

        runs.Should().Be(2);
        producer.Calls.Should().ContainInOrder("Begin", "Commit", "Abort", "Begin", "Commit");
        producer.Committed.Select(r => r.KeyText).Should().Equal("task-2", "task-2", "user-456");
        producer.Aborted.Should().HaveCount(3);
    }

    [Fact]
    public async Task An_abortable_failure_thrown_by_the_work_is_retried()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var runs = 0;

        await unit.ExecuteAsync((scope, _) =>
        {
            if (++runs == 1)
            {
                throw KafkaErrors.Abortable();
            }

            return WriteTask(scope, "t");
        });

        runs.Should().Be(2);
        producer.CallCount("Abort").Should().Be(1);
        producer.Committed.Should().HaveCount(3);
    }

    [Fact]
    public async Task Abortable_failures_stop_after_MaxAttempts_with_the_attempt_count()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 3);
        for (var i = 0; i < 5; i++)
        {
            producer.CommitFailures.Enqueue(KafkaErrors.Abortable());
        }

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) => WriteTask(scope, "t"))).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Abortable);
        failure.Which.Attempts.Should().Be(3);
        producer.CallCount("Begin").Should().Be(3);
        producer.CallCount("Abort").Should().Be(3);
        producer.Committed.Should().BeEmpty();
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task A_retriable_commit_error_retries_the_commit_not_the_work()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.CommitFailures.Enqueue(KafkaErrors.TimedOut());
        producer.CommitFailures.Enqueue(new KafkaRetriableException(new Error(ErrorCode.NotCoordinatorForGroup, "coordinator moved")));
        var runs = 0;

        await unit.ExecuteAsync((scope, _) =>
        {
            runs++;
            return WriteTask(scope, "t");
        });

        runs.Should().Be(1);
        producer.CallCount("Commit").Should().Be(3);
        producer.CallCount("Abort").Should().Be(0);
        producer.Committed.Should().HaveCount(3);
    }

    [Fact]
    public async Task A_commit_still_failing_at_CommitTimeout_has_an_unknown_outcome_and_is_not_retried()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.CommitTimeout = TimeSpan.FromMilliseconds(150));
        for (var i = 0; i < 1000; i++)
        {
            producer.CommitFailures.Enqueue(KafkaErrors.TimedOut());
        }

        producer.OnBlockingCall = (call, timeout) => Thread.Sleep(call == "Commit" ? TimeSpan.FromMilliseconds(20) : TimeSpan.Zero);
        var runs = 0;

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            runs++;
            return WriteTask(scope, "t");
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown);
        failure.Which.Message.Should().Contain("unknown").And.Contain("CommitAsync");
        runs.Should().Be(1);
        unit.State.Should().Be(TransactionState.Committing);
        producer.Committed.Should().BeEmpty();
        producer.CallCount("Abort").Should().Be(0, "a commit in flight cannot be aborted");

        // The next ExecuteAsync settles it on its own: it resumes the commit and, the outcome still unknown, replaces
        // the producer, whose Init completes or aborts the pending commit; then its own work runs.
        var ran = false;
        await unit.ExecuteAsync((s, _) =>
        {
            ran = true;
            return ValueTask.CompletedTask;
        });
        ran.Should().BeTrue();
        producer.IsDisposed.Should().BeTrue("the producer whose commit stayed unknown was replaced");
        unit.State.Should().Be(TransactionState.Ready);
        runs.Should().Be(1, "the work whose outcome was unknown never runs again");
    }

    [Fact]
    public async Task Fenced_during_commit_is_never_retried()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 5);
        producer.CommitFailures.Enqueue(KafkaErrors.Fenced());
        var runs = 0;

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            runs++;
            return WriteTask(scope, "t");
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        runs.Should().Be(1);
        unit.State.Should().Be(TransactionState.Fenced);
        producer.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public async Task A_fenced_error_in_a_delivery_report_fences_the_unit()
    {
        // librdkafka reports PRODUCER_FENCED on a produce request as a non-fatal abortable error; it is still fencing.
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 5);
        producer.DeliveryError = (_, _) => new Error(ErrorCode.ProducerFenced, "There is a newer producer with the same transactionalId");
        producer.CommitFailures.Enqueue(KafkaErrors.Abortable(ErrorCode.ProducerFenced));

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) => WriteTask(scope, "t"))).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        unit.State.Should().Be(TransactionState.Fenced);
        producer.CallCount("Begin").Should().Be(1);
    }

    [Fact]
    public async Task With_self_healing_off_a_fatal_error_faults_the_unit_and_is_not_retried()
    {
        var (unit, producer) = await TestUnits.CreateReady(o =>
        {
            o.Retry.MaxAttempts = 5;
            o.MaxProducerReplacements = 0;
        });
        producer.CommitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.OutOfOrderSequenceNumber));

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) => WriteTask(scope, "t"))).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Fatal);
        failure.Which.Message.Should().Contain("ResetAsync");
        unit.State.Should().Be(TransactionState.Faulted);
        producer.CallCount("Begin").Should().Be(1);
    }

    [Fact]
    public async Task A_failed_delivery_surfaces_at_commit_naming_the_topic_partition_and_the_transaction_is_aborted()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 1);
        producer.HoldDeliveries = true;
        producer.DeliveryError = (topic, _) => topic == "audit-log" ? new Error(ErrorCode.MsgSizeTooLarge, "Broker: Message size too large") : null;
        producer.CommitFailures.Enqueue(KafkaErrors.Abortable(ErrorCode.MsgSizeTooLarge));

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) => WriteTask(scope, "t"))).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        failure.Which.FailedDeliveries.Should().ContainSingle().Which.TopicPartition.Should().Be(new TopicPartition("audit-log", 0));
        failure.Which.Message.Should().Contain("audit-log [[0]]").And.Contain("aborted").And.Contain("MsgSizeTooLarge");
        producer.Calls.Should().ContainInOrder("Commit", "Abort");
        producer.Committed.Should().BeEmpty();
    }

    [Fact]
    public async Task A_rejected_record_is_not_retried()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 5);
        producer.DeliveryError = (_, _) => new Error(ErrorCode.UnknownTopicOrPart, "Broker: Unknown topic or partition");
        producer.CommitFailures.Enqueue(KafkaErrors.Abortable());

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) => WriteTask(scope, "t"))).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        producer.CallCount("Begin").Should().Be(1);
    }

    [Fact]
    public async Task A_delivery_failure_known_before_commit_aborts_without_committing()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 1);
        producer.DeliveryError = (_, _) => new Error(ErrorCode.TopicAuthorizationFailed, "Broker: Topic authorization failed");

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) => WriteTask(scope, "t"))).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        producer.CallCount("Commit").Should().Be(0);
        producer.CallCount("Abort").Should().Be(1);
    }

    [Fact]
    public async Task Cancellation_during_the_work_aborts_and_throws_OperationCanceledException()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        using var cts = new CancellationTokenSource();

        var act = () => unit.ExecuteAsync((scope, ct) =>
        {
            scope.Produce("t", new Message<string, string> { Value = "x" });
            cts.Cancel();
            ct.ThrowIfCancellationRequested();
            return ValueTask.CompletedTask;
        }, cts.Token);

        await act.Should().ThrowAsync<OperationCanceledException>();
        producer.CallCount("Abort").Should().Be(1);
        producer.CallCount("Commit").Should().Be(0);
        producer.Committed.Should().BeEmpty();
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task Cancellation_noticed_after_the_work_returns_still_aborts()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        using var cts = new CancellationTokenSource();

        var act = () => unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("t", new Message<string, string> { Value = "x" });
            cts.Cancel();
            return ValueTask.CompletedTask;
        }, cts.Token);

        await act.Should().ThrowAsync<OperationCanceledException>();
        producer.Committed.Should().BeEmpty();
        producer.CallCount("Abort").Should().Be(1);
    }

    [Fact]
    public async Task An_already_cancelled_token_sends_nothing()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        var act = () => unit.ExecuteAsync((scope, _) => WriteTask(scope, "t"), new CancellationToken(canceled: true));

        await act.Should().ThrowAsync<OperationCanceledException>();
        producer.Calls.Should().Equal("Init");
    }

    [Fact]
    public async Task Concurrent_callers_are_serialized_one_transaction_at_a_time()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var inside = 0;
        var maxInside = 0;

        var callers = Enumerable.Range(0, 8).Select(i => Task.Run(() => unit.ExecuteAsync(async (scope, _) =>
        {
            var now = Interlocked.Increment(ref inside);
            InterlockedMax(ref maxInside, now);
            scope.Produce("t", new Message<string, string> { Key = i.ToString(System.Globalization.CultureInfo.InvariantCulture), Value = "a" });
            await Task.Yield();
            scope.Produce("t", new Message<string, string> { Key = i.ToString(System.Globalization.CultureInfo.InvariantCulture), Value = "b" });
            Interlocked.Decrement(ref inside);
        }))).ToArray();
        await Task.WhenAll(callers);

        maxInside.Should().Be(1);
        producer.CallCount("Begin").Should().Be(8);
        producer.CallCount("Commit").Should().Be(8);

        // Each transaction holds exactly one caller's pair of records, in order.
        producer.Committed.Chunk(2).Should().AllSatisfy(pair =>
        {
            pair[0].KeyText.Should().Be(pair[1].KeyText);
            pair.Select(r => r.ValueText).Should().Equal("a", "b");
        });
    }

    [Fact]
    public async Task An_explicit_transaction_makes_ExecuteAsync_wait_until_it_ends()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        unit.BeginTransaction();
        unit.Produce("t", new Message<string, string> { Value = "explicit" });

        var queued = unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("t", new Message<string, string> { Value = "queued" });
            return ValueTask.CompletedTask;
        });
        var finishedEarly = await Task.WhenAny(queued, Task.Delay(100)) == queued;
        await unit.CommitAsync();
        await queued;

        finishedEarly.Should().BeFalse();
        producer.Committed.Select(r => r.ValueText).Should().Equal("explicit", "queued");
    }

    [Fact]
    public async Task An_abort_that_timed_out_is_resumed_before_the_next_transaction()
    {
        var (unit, producer) = await TestUnits.CreateReady(o =>
        {
            o.AbortTimeout = TimeSpan.FromMilliseconds(100);
            o.Retry.MaxAttempts = 1;
        });
        for (var i = 0; i < 1000; i++)
        {
            producer.AbortFailures.Enqueue(KafkaErrors.TimedOut());
        }

        producer.OnBlockingCall = (call, _) => Thread.Sleep(call == "Abort" ? 20 : 0);

        var failure = await unit.Awaiting(u => u.ExecuteAsync((_, _) => throw new InvalidOperationException("work failed"))).Should().ThrowAsync<KafkaTransactionException>();
        failure.Which.Kind.Should().Be(TransactionErrorKind.Retriable);
        unit.State.Should().Be(TransactionState.Aborting);

        producer.AbortFailures.Clear();
        await unit.ExecuteAsync((scope, _) => WriteTask(scope, "after"));

        unit.State.Should().Be(TransactionState.Ready);
        producer.Committed.Should().HaveCount(3);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
