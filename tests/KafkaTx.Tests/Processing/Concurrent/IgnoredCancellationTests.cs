using static KafkaTx.Tests.Processing.Concurrent.ConcurrentOrderingTests;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing.Concurrent;

/// <summary>
/// MaxConcurrency above 1 with a handler call that ignores its cancellation token: a revoke, a loss, a failed batch
/// wait for it only a bound, then abandon it: the batch aborts without it, its late write is refused, and its key's
/// records (its partition's past it) wait until it ends. Before, each of them waited for the call for ever.
/// </summary>
public class IgnoredCancellationTests
{
    [Fact]
    public async Task A_revoke_abandons_a_call_that_ignores_its_token_and_the_call_s_late_write_lands_nowhere()
    {
        var stuck = Gate();
        await using var h = StuckAt(stuck, TimeSpan.FromMilliseconds(200));
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k1", "a1");
        h.Broker.Append("in", 0, "k2", "b0");
        await h.StartAsync(P0, P1);
        await Until(() => h.Script.TimesSeen("b0") == 1, "b0 is handled while a0's call hangs");

        h.Consumer.Rebalance("revoke", P0);
        await Until(() => h.Broker.EventsSnapshot().Contains("revoke-end"), "the revoke ends without a0's call");
        h.Broker.EventsSnapshot().Should().ContainInOrder("revoke-begin", "abort", "revoke-end").And.NotContain("commit");

        h.Consumer.Rebalance("assign", P0);
        h.Broker.Append("in", 1, "k3", "d0"); // handled in a transaction that stays open
        await Until(() => h.Script.TimesSeen("d0") == 1 && h.Consumer.Position(P0).Value == 3, "P0 is read again and d0 handled");
        await Task.Delay(100); // nothing marks a call that does not start
        h.Script.TimesSeen("a0").Should().Be(1, "a0, read again, waits in its key's lane for the abandoned call");
        h.Script.TimesSeen("b0").Should().Be(1, "b0 lies past a0 in P0: it could not commit before a0, so it waits too");

        stuck.SetResult(); // the abandoned call goes on and writes a0 while d0's transaction is open: refused
        // Every call has begun (each ends at once) before the stop: its 200 ms drain, short for the revoke's sake, is
        // then never what decides whether the batch commits on a loaded machine.
        await Until(() => h.Script.TimesSeen("b0") == 2 && h.Script.TimesSeen("a1") == 1, "P0 goes on once the abandoned call has ended");
        await h.StopAsync();

        h.CommittedOutput.Should().BeEquivalentTo(["a0", "a1", "b0", "d0"], "the abandoned call's write did not land in d0's transaction");
        h.Script.Seen.Where(v => v.StartsWith('a')).Should().Equal(["a0", "a0", "a1"], "one call of a key at a time, in order");
        h.Loop.State.Should().Be(ProcessorState.Stopped);
    }

    [Fact]
    public async Task A_loss_waits_only_a_short_bound_for_a_call_that_ignores_its_token()
    {
        var stuck = Gate();
        await using var h = StuckAt(stuck, shutdownTimeout: null); // ShutdownTimeout 10 s: a loss waits 1 s at most
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");
        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("b0") == 1, "b0 is handled while a0's call hangs");

        h.Consumer.Rebalance("lost", P0);
        await Until(() => h.Broker.EventsSnapshot().Contains("abort"), "the loss aborts without a0's call", seconds: 5);
        h.Consumer.Rebalance("assign", P0);
        stuck.SetResult();
        await Until(() => h.Broker.GroupOffset(P0) == 2 || h.Script.TimesSeen("b0") == 2, "the partition is handled again once a0's call ended");
        await h.StopAsync();

        h.Broker.EventsSnapshot().Should().ContainInOrder("lost", "abort");
        h.CommittedOutput.Should().BeEquivalentTo("a0", "b0");
        h.Broker.GroupOffset(P0).Should().Be(2);
    }

    [Fact]
    public async Task A_failed_batch_abandons_a_call_that_ignores_its_token_and_only_that_partition_waits_for_it()
    {
        var stuck = Gate();
        await using var h = StuckAt(stuck, TimeSpan.FromMilliseconds(200), o => o.MaxBatchDuration = TimeSpan.FromMilliseconds(100));
        h.Script.Fail = (value, seen) => value == "b0" && seen == 1;
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k3", "c0"); // past a0 in its partition: cannot commit before a0 is handled
        h.Broker.Append("in", 1, "k2", "b0");
        await h.StartAsync(P0, P1);

        await Until(() => h.Broker.GroupOffset(P1) == 1, "b0's retry commits while a0's abandoned call still runs");
        await Task.Delay(100); // nothing marks a record that is not dispatched
        h.Broker.GroupOffset(P0).Should().BeNull("a0 waits for its abandoned call, and c0 lies past it");
        h.Script.TimesSeen("c0").Should().BeLessThanOrEqualTo(1, "c0, read again, is not dispatched while it could not commit");

        stuck.SetResult();
        await Until(() => h.Broker.GroupOffset(P0) == 2, "P0 goes on once a0's call ended");
        await h.StopAsync();

        h.CommittedOutput.Should().BeEquivalentTo("a0", "b0", "c0");
        h.CommittedTo("in.DLT").Should().BeEmpty("the abandoned call is not charged: it was cancelled for b0's failure");
    }

    [Fact]
    public async Task A_call_that_overruns_the_transaction_and_ignores_its_token_is_abandoned_and_charged()
    {
        var stuck = Gate();
        await using var h = new ProcessorHarness(
            o =>
            {
                Parallel(ProcessingOrder.Key)(o);
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(100);
                o.ShutdownTimeout = TimeSpan.FromMilliseconds(200);
                o.Retry.MaxAttempts = 1; // one charge makes it poison: the dead-letter topic shows the charge
            },
            producer: p => p.TransactionTimeout = TimeSpan.FromSeconds(1));
        h.Script.Await = (value, _) => value == "a0" && h.Script.TimesSeen("a0") == 1 ? stuck.Task : Task.CompletedTask;
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 1, "k2", "b0");
        await h.StartAsync(P0, P1);

        await Until(() => h.Broker.GroupOffset(P1) == 1, "b0 commits after the overrun aborted its first batch", 20);
        stuck.SetResult();
        await Until(() => h.Broker.GroupOffset(P0) == 1, "a0, poison, is dead-lettered once its call ended", 20);
        await h.StopAsync();

        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal(["a0"], "the call that overran was charged");
        h.CommittedOutput.Should().Equal("b0");
    }

    [Fact]
    public async Task Records_behind_an_abandoned_call_s_hole_in_a_key_lane_spanning_partitions_are_not_dispatched_so_the_other_partition_commits()
    {
        // Lane k2 holds b0 (P0, past a0, which waits for its abandoned call) then b1 (P1). b1 alone is dispatchable,
        // but b0 goes first in its lane: taking the lane's head for b1's sake dispatched b0 past a0's hole, and the
        // batch could then neither commit nor end before its bound. The lane waits whole instead.
        var stuck = Gate();
        await using var h = StuckAt(stuck, TimeSpan.FromMilliseconds(200), o => o.MaxBatchDuration = TimeSpan.FromMilliseconds(100));
        h.Script.Fail = (value, seen) => value == "c0" && seen == 1;
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");
        h.Broker.Append("in", 1, "k3", "c0");
        h.Broker.Append("in", 1, "k4", "x0");
        h.Broker.Append("in", 1, "k2", "b1"); // after b0 in k2's lane, however the partitions interleave
        await h.StartAsync(P0, P1);

        await Until(() => h.Broker.GroupOffset(P1) == 2, "c0's retry and x0 commit while a0's abandoned call still runs");
        h.Script.TimesSeen("b0").Should().Be(0, "c0 broke the first batch before b0 was dispatched, and b0 lies past a0's hole since: it waits, and b1 behind it in their lane");
        h.Script.TimesSeen("b1").Should().Be(0);
        h.Broker.GroupOffset(P0).Should().BeNull();

        stuck.SetResult();
        await Until(() => h.Broker.GroupOffset(P0) == 2 && h.Broker.GroupOffset(P1) == 3, "both partitions go on once a0's call ended");
        await h.StopAsync();

        h.CommittedOutput.Should().BeEquivalentTo("a0", "b0", "c0", "x0", "b1");
        h.CommittedOutput.Should().OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task An_abandoned_call_s_token_source_is_disposed_once_the_call_has_ended()
    {
        // The batch's linked token source was left undisposed when a call of the batch was abandoned: its
        // registration on the processor's drain token stayed for the processor's life.
        var stuck = Gate();
        var tokens = new System.Collections.Concurrent.ConcurrentQueue<CancellationToken>();
        await using var h = StuckAt(stuck, TimeSpan.FromMilliseconds(200), o => o.MaxBatchDuration = TimeSpan.FromMilliseconds(100));
        h.Script.Fail = (value, seen) => value == "b0" && seen == 1;
        h.Script.Await = (value, token) =>
        {
            if (value != "a0" || h.Script.TimesSeen("a0") != 1)
            {
                return Task.CompletedTask;
            }

            tokens.Enqueue(token);
            return stuck.Task; // ignores its token
        };
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 1, "k2", "b0");
        await h.StartAsync(P0, P1);
        await Until(() => h.Broker.GroupOffset(P1) == 1, "b0's retry commits while a0's abandoned call still runs");
        var token = tokens.Should().ContainSingle().Subject;
        token.IsCancellationRequested.Should().BeTrue("the failed batch cancelled its calls");
        _ = token.WaitHandle; // still in use: not disposed while the call runs

        stuck.SetResult();
        await Until(() => h.Broker.GroupOffset(P0) == 1, "a0 is handled again once its abandoned call ended and was collected");
        await h.StopAsync();

        var readHandle = () => token.WaitHandle;
        readHandle.Should().Throw<ObjectDisposedException>("the source is disposed once the abandoned call has ended");
    }

    /// <summary>A harness whose first call for a0 waits for <paramref name="stuck"/> and ignores its token.</summary>
    internal static ProcessorHarness StuckAt(TaskCompletionSource stuck, TimeSpan? shutdownTimeout, Action<TransactionalProcessorOptions>? configure = null, int maxConcurrency = 4)
    {
        var h = new ProcessorHarness(o =>
        {
            Parallel(ProcessingOrder.Key, maxConcurrency)(o);
            o.ShutdownTimeout = shutdownTimeout ?? o.ShutdownTimeout;
            configure?.Invoke(o);
        });
        h.Script.Await = (value, _) => value == "a0" && h.Script.TimesSeen("a0") == 1 ? stuck.Task : Task.CompletedTask;
        return h;
    }
}
