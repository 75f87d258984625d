using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Processing;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>
/// Cancellation in every phase, and what follows a commit whose outcome is unknown: once CommitTransaction is sent it
/// runs to its outcome whatever the token says, and a commit left unknown is settled by the next call on its own.
/// </summary>
public class CancellationTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private static Message<string, string> Record(string key) => new() { Key = key, Value = "v" };

    private static Func<ITransactionScope, CancellationToken, ValueTask> Write(string key) => (scope, _) =>
    {
        scope.Produce("orders", Record(key));
        return ValueTask.CompletedTask;
    };

    /// <summary>
    /// The first commit call blocks until released, then times out as a librdkafka slice does when the coordinator is
    /// slow (the next call resumes and completes it): a commit in flight that the test can cancel.
    /// </summary>
    private static (Task Running, ManualResetEventSlim Release) SlowFirstCommit(FakeProducer producer)
    {
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new ManualResetEventSlim();
        var first = 1;
        producer.OnBlockingCall = (call, _) =>
        {
            if (call == "Commit" && Interlocked.Exchange(ref first, 0) == 1)
            {
                running.SetResult();
                release.Wait(Deadline);
                throw KafkaErrors.TimedOut();
            }
        };
        return (running.Task, release);
    }

    [Fact]
    public async Task Cancelling_ExecuteAsync_during_its_commit_lets_the_commit_complete_and_the_next_call_works()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var (commitRunning, release) = SlowFirstCommit(producer);
        using var _ = release;
        using var cancel = new CancellationTokenSource();

        var call = unit.ExecuteAsync(Write("o-1"), cancel.Token);
        await commitRunning.WaitAsync(Deadline);
        await cancel.CancelAsync();
        release.Set();

        await call.WaitAsync(Deadline); // the commit was sent: it runs to its outcome, and the caller learns it
        producer.Committed.Select(r => r.KeyText).Should().Equal("o-1");
        producer.CallCount("Abort").Should().Be(0);
        unit.State.Should().Be(TransactionState.Ready);

        await unit.ExecuteAsync(Write("o-2"));
        producer.Committed.Select(r => r.KeyText).Should().Equal("o-1", "o-2");
    }

    [Fact]
    public async Task Cancelling_the_explicit_CommitAsync_after_it_is_sent_stops_waiting_and_the_next_call_settles_the_commit()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var (commitRunning, release) = SlowFirstCommit(producer);
        using var _ = release;
        using var cancel = new CancellationTokenSource();
        unit.BeginTransaction();
        unit.Produce("orders", Record("o-1"));

        var commit = unit.CommitAsync(cancel.Token);
        await commitRunning.WaitAsync(Deadline);
        await cancel.CancelAsync();
        release.Set();

        // The explicit caller chose to stop waiting (a processor bounding its shutdown, say): the outcome is unknown.
        await commit.Awaiting(c => c.WaitAsync(Deadline)).Should().ThrowAsync<OperationCanceledException>();
        unit.State.Should().Be(TransactionState.Committing);

        // The transaction is no longer its owner's to finish: the next call, whoever makes it, settles the commit.
        await unit.ExecuteAsync(Write("o-2")).WaitAsync(Deadline);
        producer.Committed.Select(r => r.KeyText).Should().Equal("o-1", "o-2");
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task Cancelling_the_explicit_CommitAsync_before_it_is_sent_leaves_the_transaction_open()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        unit.BeginTransaction();
        unit.Produce("orders", Record("o-1"));

        await unit.Awaiting(u => u.CommitAsync(new CancellationToken(canceled: true))).Should().ThrowAsync<OperationCanceledException>();

        producer.CallCount("Commit").Should().Be(0);
        unit.State.Should().Be(TransactionState.InTransaction);
        await unit.CommitAsync();
        producer.Committed.Should().ContainSingle();
    }

    [Fact]
    public async Task A_commit_whose_outcome_stayed_unknown_is_resumed_by_the_next_ExecuteAsync_on_its_own()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.CommitTimeout = TimeSpan.FromMilliseconds(100));
        var unknown = 1;
        producer.CommitsTimeOutWhile(() => Volatile.Read(ref unknown) == 1);
        var failure = await unit.Awaiting(u => u.ExecuteAsync(Write("o-1"))).Should().ThrowAsync<KafkaTransactionException>();
        failure.Which.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown);
        unit.State.Should().Be(TransactionState.Committing);
        Volatile.Write(ref unknown, 0); // the coordinator answers again

        await unit.ExecuteAsync(Write("o-2")); // no other call first: it settles the earlier commit itself

        producer.Committed.Select(r => r.KeyText).Should().Equal(["o-1", "o-2"], "the resumed commit completed the first transaction, then the second ran");
        producer.CallCount("Init").Should().Be(1, "a commit that completes when resumed needs no new producer");
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task A_pending_commit_still_unknown_when_resumed_is_settled_by_a_new_producer_and_the_next_work_runs()
    {
        var created = 0;
        var (unit, factory) = TestUnits.Create(
            o => o.CommitTimeout = TimeSpan.FromMilliseconds(100),
            setup: p =>
            {
                if (Interlocked.Increment(ref created) == 1)
                {
                    p.CommitsTimeOutWhile(() => true); // the first producer never learns the outcome
                }
            });
        await unit.Awaiting(u => u.ExecuteAsync(Write("o-1"))).Should().ThrowAsync<KafkaTransactionException>();

        await unit.ExecuteAsync(Write("o-2"));

        factory.Producers.Should().HaveCount(2);
        factory.Producers[0].IsDisposed.Should().BeTrue();
        factory.Producers[0].CallCount("Commit").Should().BeGreaterThan(1, "the pending commit was resumed before the producer was replaced");
        factory.Producers[1].Calls.Should().StartWith("Init", "the new producer's InitTransactions completes or aborts the pending transaction");
        factory.Producers[1].Committed.Select(r => r.KeyText).Should().Equal("o-2");
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Theory]
    [InlineData(false, "CommitAsync")]
    [InlineData(false, "ExecuteAsync")]
    [InlineData(false, "InitializeAsync")]
    [InlineData(false, "ResetAsync")]
    [InlineData(true, "CommitAsync")]
    [InlineData(true, "ExecuteAsync")]
    [InlineData(true, "InitializeAsync")]
    [InlineData(true, "ResetAsync")]
    public async Task While_a_commit_outcome_is_unknown_every_refusal_names_calls_that_work(bool explicitCommit, string named)
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.CommitTimeout = TimeSpan.FromMilliseconds(100));
        var unknown = 1;
        producer.CommitsTimeOutWhile(() => Volatile.Read(ref unknown) == 1);
        if (explicitCommit)
        {
            unit.BeginTransaction();
            unit.Produce("orders", Record("o-1"));
            await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();
        }
        else
        {
            await unit.Awaiting(u => u.ExecuteAsync(Write("o-1"))).Should().ThrowAsync<KafkaTransactionException>();
        }

        unit.State.Should().Be(TransactionState.Committing);
        var refusals = new[]
        {
            unit.Invoking(u => u.BeginTransaction()).Should().Throw<InvalidOperationException>().Which.Message,
            unit.Invoking(u => u.Produce("orders", Record("x"))).Should().Throw<InvalidOperationException>().Which.Message,
            (await unit.Awaiting(u => u.AbortAsync()).Should().ThrowAsync<InvalidOperationException>()).Which.Message,
        };
        refusals.Should().OnlyContain(m => m.Contains(named, StringComparison.Ordinal), $"each refusal names {named}");
        refusals.Should().OnlyContain(m => !m.Contains("call BeginTransaction", StringComparison.Ordinal), "BeginTransaction does not work in this state");
        Volatile.Write(ref unknown, 0);

        switch (named)
        {
            case "CommitAsync":
                await unit.CommitAsync();
                producer.Committed.Select(r => r.KeyText).Should().Equal("o-1");
                break;
            case "ExecuteAsync":
                await unit.ExecuteAsync(Write("o-2"));
                producer.Committed.Select(r => r.KeyText).Should().Equal("o-1", "o-2");
                break;
            case "InitializeAsync":
                await unit.InitializeAsync();
                break;
            default:
                await unit.ResetAsync();
                break;
        }

        unit.State.Should().BeOneOf(TransactionState.Ready, TransactionState.Uninitialized);
        await unit.ExecuteAsync(Write("o-3"));
    }

    [Fact]
    public async Task After_an_abort_of_ExecuteAsync_timed_out_AbortAsync_resumes_it_as_the_message_says()
    {
        var (unit, producer) = await TestUnits.CreateReady(o =>
        {
            o.AbortTimeout = TimeSpan.FromMilliseconds(100);
            o.Retry.MaxAttempts = 1;
        });
        var slow = 1;
        producer.OnBlockingCall = (call, _) =>
        {
            if (call == "Abort" && Volatile.Read(ref slow) == 1)
            {
                Thread.Sleep(5);
                throw KafkaErrors.TimedOut();
            }
        };

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            scope.Produce("orders", Record("o-1"));
            throw new InvalidDataException("payment declined");
        })).Should().ThrowAsync<KafkaTransactionException>();
        unit.State.Should().Be(TransactionState.Aborting);
        failure.Which.Message.Should().Contain("AbortAsync");
        Volatile.Write(ref slow, 0);

        await unit.AbortAsync();

        unit.State.Should().Be(TransactionState.Ready);
        producer.Aborted.Select(r => r.KeyText).Should().Equal("o-1");
    }

    [Fact]
    public async Task A_produce_waiting_for_queue_room_stops_when_the_ExecuteAsync_token_is_cancelled()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var full = 1;
        producer.QueueFull = () => Volatile.Read(ref full) == 1;
        using var cancel = new CancellationTokenSource();
        try
        {
            var call = Task.Run(() => unit.ExecuteAsync(Write("o-1"), cancel.Token));
            await ProcessorHarness.Until(() => producer.QueueFullRefusals > 0, "the produce waits for room in the queue");
            await cancel.CancelAsync();

            await call.Awaiting(c => c.WaitAsync(Deadline)).Should().ThrowAsync<OperationCanceledException>();
            producer.Committed.Should().BeEmpty();
            unit.State.Should().Be(TransactionState.Ready, "the transaction was aborted");
        }
        finally
        {
            Volatile.Write(ref full, 0); // lets a wait that did not stop end
        }
    }

    [Fact]
    public async Task The_token_given_to_BeginTransaction_stops_a_produce_waiting_for_queue_room()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var full = 1;
        producer.QueueFull = () => Volatile.Read(ref full) == 1;
        using var cancel = new CancellationTokenSource();
        unit.BeginTransaction(cancel.Token); // the processor's way: its handlers' token
        try
        {
            var produce = Task.Run(() => unit.Produce("orders", Record("o-1")));
            await ProcessorHarness.Until(() => producer.QueueFullRefusals > 0, "the produce waits for room in the queue");
            await cancel.CancelAsync();

            await produce.Awaiting(p => p.WaitAsync(Deadline)).Should().ThrowAsync<OperationCanceledException>().WithMessage("*stopped waiting for room*cancelled*");
            unit.State.Should().Be(TransactionState.InTransaction, "the transaction stays open for its owner to abort");
            await unit.AbortAsync();
            producer.ProducedCount.Should().Be(0);
        }
        finally
        {
            Volatile.Write(ref full, 0);
        }
    }

    [Fact]
    public async Task A_produce_waiting_for_queue_room_stops_when_the_unit_is_disposed()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var full = 1;
        producer.QueueFull = () => Volatile.Read(ref full) == 1;
        try
        {
            var call = Task.Run(() => unit.ExecuteAsync(Write("o-1")));
            await ProcessorHarness.Until(() => producer.QueueFullRefusals > 0, "the produce waits for room in the queue");

            await unit.DisposeAsync().AsTask().WaitAsync(Deadline);

            await call.Awaiting(c => c.WaitAsync(Deadline)).Should().ThrowAsync<ObjectDisposedException>();
            producer.Committed.Should().BeEmpty();
            producer.Overlaps.Should().BeEmpty();
        }
        finally
        {
            Volatile.Write(ref full, 0);
        }
    }
}
