using static KafkaTx.Tests.Processing.Concurrent.ConcurrentOrderingTests;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing.Concurrent;

/// <summary>MaxConcurrency above 1: the commit barrier, failures, rebalances and stops with handler calls in flight.</summary>
public class CommitBarrierTests
{
    [Fact]
    public async Task A_due_batch_commits_only_after_its_calls_end_and_fills_the_holes_below_its_records_first()
    {
        // a0 (k1) waits; b0 and b1 (k2) are handled: three records dispatched, the batch is due. a1 (k1, offset 1)
        // waits in a0's lane below b1 (offset 3): committing offset 4 without it would skip it for good.
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Key, maxBatchSize: 3));
        var a0 = Gate();
        HoldAt(h.Script, new() { ["a0"] = a0 });
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k1", "a1");
        h.Broker.Append("in", 0, "k2", "b0");
        h.Broker.Append("in", 0, "k2", "b1");

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("b1") == 1, "b0 and b1 are handled");
        await Task.Delay(100); // no event marks a commit that does not happen
        h.Broker.EventsSnapshot().Should().NotContain("commit", "a0's handler is still running");

        a0.SetResult();
        await Until(() => h.Broker.GroupOffset(P0) == 4, "the batch commits");

        h.Factory.Current.CommittedOffsets.First().Single().Offset.Value.Should().Be(4);
        h.CommittedOutput.Should().BeEquivalentTo("a0", "a1", "b0", "b1");
        h.Script.Seen.Should().ContainInOrder("a0", "a1");
    }

    [Fact]
    public async Task A_failing_record_aborts_the_whole_batch_and_only_it_is_charged_and_dead_lettered()
    {
        await using var h = new ProcessorHarness(o =>
        {
            Parallel(ProcessingOrder.Key)(o);
            o.MaxBatchSize = 3;
            o.Retry.MaxAttempts = 2;
        });
        h.Script.Fail = (value, _) => value == "b0";
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");
        h.Broker.Append("in", 0, "k3", "c0");

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 3, "the batch commits after b0 is dead-lettered");

        h.Script.TimesSeen("b0").Should().Be(2, "MaxAttempts is 2");
        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal("b0");
        h.CommittedOutput.Should().BeEquivalentTo("a0", "c0");
        h.CommittedOutput.Should().OnlyHaveUniqueItems();
        h.Broker.EventsSnapshot().Should().Contain("abort");
    }

    [Fact]
    public async Task A_revoke_waits_for_the_calls_in_flight_then_commits_before_the_partition_moves()
    {
        var a0 = Gate();
        await using var h = await StartWithOneCallHeldAsync(a0);
        h.Consumer.Rebalance("revoke", P0);
        await Until(() => h.Broker.EventsSnapshot().Contains("revoke-begin"), "the revoke begins");
        a0.SetResult();
        await Until(() => h.Broker.EventsSnapshot().Contains("revoke-end"), "the revoke ends");

        h.Broker.EventsSnapshot().Should().ContainInOrder("revoke-begin", "commit", "revoke-end");
        h.Broker.GroupOffset(P0).Should().Be(2);
        h.CommittedOutput.Should().BeEquivalentTo("a0", "b0");
    }

    [Fact]
    public async Task A_revoke_cancels_a_call_that_overruns_ShutdownTimeout_and_aborts_its_batch()
    {
        await using var h = await StartWithOneCallHeldAsync(Gate(), TimeSpan.FromMilliseconds(200)); // a0's gate is never released: only its token ends it
        h.Consumer.Rebalance("revoke", P0);
        await Until(() => h.Broker.EventsSnapshot().Contains("revoke-end"), "the revoke ends");

        h.Script.Cancelled.Should().Equal("a0");
        h.Broker.EventsSnapshot().Should().ContainInOrder("revoke-begin", "abort", "revoke-end").And.NotContain("commit");
        h.Broker.GroupOffset(P0).Should().BeNull();
        h.CommittedOutput.Should().BeEmpty();
    }

    [Fact]
    public async Task A_loss_cancels_the_calls_in_flight_aborts_and_the_partition_is_read_again_when_it_comes_back()
    {
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Key));
        h.Script.Await = (value, token) => value == "a0" && h.Script.TimesSeen("a0") == 1 ? Task.Delay(Timeout.Infinite, token) : Task.CompletedTask;
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("b0") == 1, "b0 is handled while a0 waits");
        h.Consumer.Rebalance("lost", P0);
        await Until(() => h.Script.Cancelled.Count == 1, "a0's call is cancelled");
        h.Consumer.Rebalance("assign", P0);
        await Until(() => h.Broker.GroupOffset(P0) == 2 || h.Script.TimesSeen("b0") == 2, "the partition is read again");
        await h.StopAsync();

        h.Script.Cancelled.Should().Equal("a0");
        h.Broker.EventsSnapshot().Should().ContainInOrder("lost", "abort");
        h.CommittedOutput.Should().BeEquivalentTo("a0", "b0");
        h.Broker.GroupOffset(P0).Should().Be(2);
    }

    [Fact]
    public async Task A_graceful_stop_lets_the_calls_in_flight_finish_and_commits_exactly_the_handled_records()
    {
        var a0 = Gate();
        await using var h = await StartWithOneCallHeldAsync(a0);
        var stopping = h.StopAsync();
        await Until(() => h.StopRequested, "the stop is requested");
        h.Broker.Append("in", 0, "k3", "c0"); // arrives during the stop: not taken
        a0.SetResult();
        await stopping;

        h.CommittedOutput.Should().BeEquivalentTo("a0", "b0");
        h.Broker.GroupOffset(P0).Should().Be(2);
        h.Script.TimesSeen("c0").Should().Be(0);
    }

    [Fact]
    public async Task A_graceful_stop_cancels_calls_still_running_when_ShutdownTimeout_runs_out_and_aborts()
    {
        await using var h = await StartWithOneCallHeldAsync(Gate(), TimeSpan.FromMilliseconds(200)); // a0's gate is never released: only its token ends it
        await h.StopAsync();

        h.Script.Cancelled.Should().Equal("a0");
        h.CommittedOutput.Should().BeEmpty("the batch lost a0's handler: b0's output must not commit alone past it");
        h.Broker.GroupOffset(P0).Should().BeNull();
        h.Broker.EventsSnapshot().Should().Contain("abort").And.NotContain("commit");
    }

    /// <summary>A processor whose call for a0 waits for <paramref name="a0"/> (or its token) while b0, another key, is handled.</summary>
    private static async Task<ProcessorHarness> StartWithOneCallHeldAsync(TaskCompletionSource a0, TimeSpan? shutdownTimeout = null)
    {
        var h = new ProcessorHarness(o =>
        {
            Parallel(ProcessingOrder.Key)(o);
            o.ShutdownTimeout = shutdownTimeout ?? o.ShutdownTimeout;
        });
        HoldAt(h.Script, new() { ["a0"] = a0 });
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");
        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("b0") == 1, "b0 is handled while a0 waits");
        return h;
    }
}
