using static KafkaTx.Tests.Processing.Batching.BatchHandlerTests;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing.Batching;

/// <summary>A batch handler through graceful stops, revokes, losses and a transaction that outlives its timeout: as a record handler.</summary>
public class BatchHandlerStopAndRebalanceTests
{
    private static TaskCompletionSource Gate() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Makes the first call signal <paramref name="entered"/> and wait for <paramref name="release"/> (or for its token).</summary>
    private static void HoldFirstCall(BatchScript script, TaskCompletionSource entered, Task release) =>
        script.Await = (_, token) =>
        {
            if (script.CallCount != 1)
            {
                return Task.CompletedTask;
            }

            entered.TrySetResult();
            return release.WaitAsync(token); // a call that honours its token
        };

    [Fact]
    public async Task A_stop_lets_the_call_in_flight_finish_and_commits_its_batch()
    {
        var (entered, release) = (Gate(), Gate());
        var script = new BatchScript();
        HoldFirstCall(script, entered, release.Task);
        await using var h = BatchProcessor(script, o => o.MaxBatchSize = 5);
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var stopping = h.StopAsync();
        h.Loop.State.Should().Be(ProcessorState.Running, "the call in flight is still running");
        release.SetResult();
        await stopping;

        script.Cancelled.Should().BeEmpty("ShutdownTimeout did not run out");
        script.Calls.Should().ContainSingle("a stopping processor begins no new batch");
        h.CommittedOutput.Should().Equal(Values(0, 5));
        h.Broker.GroupOffset(P0).Should().Be(5);
        h.Loop.State.Should().Be(ProcessorState.Stopped);
        h.Consumer.IsClosed.Should().BeTrue();
    }

    [Fact]
    public async Task A_call_cancelled_when_ShutdownTimeout_runs_out_aborts_its_batch_so_none_of_its_work_commits()
    {
        var entered = Gate();
        var script = new BatchScript();
        HoldFirstCall(script, entered, Task.Delay(Timeout.Infinite)); // never ends unless its token is cancelled
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = 5;
            o.ShutdownTimeout = TimeSpan.FromMilliseconds(200);
        });
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await h.StopAsync();

        script.Cancelled.Should().ContainSingle().Which.Should().Equal(Values(0, 5));
        h.CommittedOutput.Should().BeEmpty("the cancelled call's copies were written into the transaction, which aborted");
        h.Factory.Current.Aborted.Select(r => r.ValueText).Should().Equal(Values(0, 5));
        h.Broker.GroupOffset(P0).Should().BeNull();
        h.Loop.State.Should().Be(ProcessorState.Stopped);
    }

    [Fact]
    public async Task A_stop_abandons_a_call_that_ignores_its_token_aborts_its_batch_and_closes_the_consumer()
    {
        // The batch handler's call was awaited without bound: a call ignoring its token held the stop for ever.
        var entered = Gate();
        var stuck = Gate();
        var script = new BatchScript
        {
            Await = (_, _) =>
            {
                entered.TrySetResult();
                return stuck.Task; // ignores its token
            },
        };
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = 5;
            o.ShutdownTimeout = TimeSpan.FromMilliseconds(200);
        });
        h.Broker.AppendMany("in", 0, 5);

        await h.StartAsync();
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var stopping = h.StopAsync();
        await Until(() => stopping.IsCompleted, "the stop ends though the call ignores its token");
        await stopping;

        h.Loop.State.Should().Be(ProcessorState.Stopped);
        h.Consumer.IsClosed.Should().BeTrue();
        h.CommittedOutput.Should().BeEmpty("the abandoned call's batch aborted");
        h.Broker.GroupOffset(P0).Should().BeNull();
        h.Unit.State.Should().Be(TransactionState.Ready, "no transaction is left open");
        stuck.SetResult();
    }

    [Fact]
    public async Task A_revoke_requested_while_the_call_runs_is_served_after_its_batch_commits_and_the_partition_is_not_read_further()
    {
        var (entered, release) = (Gate(), Gate());
        var script = new BatchScript();
        HoldFirstCall(script, entered, release.Task);
        await using var h = BatchProcessor(script, o => o.MaxBatchSize = 4);
        foreach (var i in Enumerable.Range(0, 4))
        {
            h.Broker.Append("in", 0, "a", "a" + i);
            h.Broker.Append("in", 1, "b", "b" + i);
        }

        await h.StartAsync(P0, P1);
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        h.Consumer.Rebalance("revoke", P1);
        release.SetResult();
        await Until(() => h.Broker.GroupOffset(P0) == 4, "partition 0 is copied to its end");

        h.Broker.EventsSnapshot().Should().ContainInOrder("commit", "revoke-begin", "revoke-end");
        script.Calls.First().Should().BeEquivalentTo(["a0", "a1", "b0", "b1"]);
        script.Calls.SelectMany(c => c).Should().NotContain(["b2", "b3"], "partition 1 is another member's after the revoke");
        h.Broker.GroupOffset(P1).Should().Be(2);
        h.CommittedOutput.Should().BeEquivalentTo(["a0", "a1", "a2", "a3", "b0", "b1"]);
    }

    [Fact]
    public async Task Records_waiting_for_their_batch_when_their_partition_is_revoked_are_left_to_its_next_owner()
    {
        var script = new BatchScript();
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = 100;
            o.MaxBatchDuration = TimeSpan.FromSeconds(2);
        });
        h.Broker.Append("in", 0, "a", "a0");
        h.Broker.Append("in", 0, "a", "a1");
        h.Broker.Append("in", 1, "b", "b0");
        h.Broker.Append("in", 1, "b", "b1");

        await h.StartAsync(P0, P1);
        await Until(() => h.Consumer.Position(P0) == 2 && h.Consumer.Position(P1) == 2, "all four records are read into the next batch");
        h.Consumer.Rebalance("revoke", P1);
        await Until(() => h.Broker.GroupOffset(P0) == 2, "the batch of partition 0 commits");

        script.Calls.Should().ContainSingle().Which.Should().Equal("a0", "a1");
        h.Broker.GroupOffset(P1).Should().BeNull("no transaction was open: nothing of partition 1 was handled or committed");
        h.CommittedOutput.Should().Equal("a0", "a1");
    }

    [Fact]
    public async Task A_loss_while_records_wait_for_their_batch_drops_them_and_rewinds_so_every_record_still_commits_once()
    {
        var script = new BatchScript();
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = 100;
            o.MaxBatchDuration = TimeSpan.FromSeconds(2);
        });
        h.Broker.Append("in", 0, "a", "a0");
        h.Broker.Append("in", 1, "b", "b0");

        await h.StartAsync(P0, P1);
        await Until(() => h.Consumer.Position(P0) == 1 && h.Consumer.Position(P1) == 1, "both records are read into the next batch");
        h.Consumer.Rebalance("lost", P0);
        await Until(() => h.Broker.GroupOffset(P1) == 1, "partition 1, rewound, is read again and committed");
        h.Consumer.Rebalance("assign", P0);
        await Until(() => h.Broker.GroupOffset(P0) == 1, "partition 0, assigned back, is committed");

        script.Calls.SelectMany(c => c).Should().BeEquivalentTo(["a0", "b0"], "the records read before the loss were dropped, never handed over twice");
        h.CommittedOutput.Should().BeEquivalentTo(["a0", "b0"]);
    }

    [Theory]
    [InlineData(300)] // longer than TransactionTimeout (60 s): the broker would abort it
    [InlineData(57)]  // in its last 5 s: a commit sent then could arrive after the broker aborted it, and be fenced
    public async Task A_call_that_outlives_the_transaction_timeout_counts_against_its_records_one_by_one_so_only_the_slow_one_is_dead_lettered(int callSeconds)
    {
        var clock = new ManualClock();
        var script = new BatchScript
        {
            OnCall = values =>
            {
                if (values.Contains("v1"))
                {
                    clock.Advance(TimeSpan.FromSeconds(callSeconds));
                }
            },
        };
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = 3;
            o.Retry.MaxAttempts = 2;
        }, clock: clock);
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 3, "v1 is dead-lettered, v0 and v2 copied");

        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal("v1");
        h.CommittedOutput.Should().Equal("v0", "v2");
        script.Calls.Skip(1).Should().AllSatisfy(c => c.Should().ContainSingle(), "after the expired batch, its records commit one by one, as with a record handler");
    }
}
