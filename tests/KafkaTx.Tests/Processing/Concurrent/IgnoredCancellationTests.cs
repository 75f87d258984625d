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
        await Until(() => h.Script.TimesSeen("b0") == 2, "P0 goes on once the abandoned call has ended");
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
