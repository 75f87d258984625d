using static KafkaTx.Tests.Processing.Concurrent.ConcurrentOrderingTests;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing.Concurrent;

/// <summary>MaxConcurrency above 1: who is charged when a batch fails, and a call that overruns its transaction.</summary>
public class ConcurrentFailureTests
{
    [Fact]
    public async Task Calls_cancelled_because_another_record_failed_are_never_charged_so_only_the_failing_record_is_dead_lettered()
    {
        await using var h = new ProcessorHarness(o =>
        {
            Parallel(ProcessingOrder.Key)(o);
            o.MaxBatchSize = 2;
            o.Retry.MaxAttempts = 2;
        });

        // a0's first two calls wait for their token: each time, b0's failure aborts the batch and cancels a0's call.
        h.Script.Await = (value, token) => value == "a0" && h.Script.TimesSeen("a0") <= 2 ? Task.Delay(Timeout.Infinite, token) : Task.CompletedTask;
        h.Script.Fail = (value, _) => value == "b0";
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 2, "the batch commits once b0 is dead-lettered");

        h.Script.Cancelled.Should().Equal("a0", "a0");
        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal(["b0"], "a0 was cancelled twice with MaxAttempts 2, never charged");
        h.CommittedOutput.Should().Equal("a0");
    }

    [Fact]
    public async Task A_call_still_running_when_the_transaction_nears_its_timeout_is_cancelled_charged_and_its_batch_aborted()
    {
        await using var h = new ProcessorHarness(
            o =>
            {
                Parallel(ProcessingOrder.Key)(o);
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(100);
                o.Retry.MaxAttempts = 1; // one charge makes it poison: the dead-letter topic shows the charge
            },
            producer: p => p.TransactionTimeout = TimeSpan.FromSeconds(1));

        // a0's call never ends on its own: only the overrun's cancellation ends it.
        h.Script.Await = (value, token) => value == "a0" && h.Script.TimesSeen("a0") == 1 ? Task.Delay(Timeout.Infinite, token) : Task.CompletedTask;
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 2, "the retry commits", 20);

        h.Script.Cancelled.Should().Equal("a0");
        h.Broker.EventsSnapshot().Should().ContainInOrder("abort", "commit");
        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal(["a0"], "the call that overran was charged: with MaxAttempts 1 it is poison");
        h.CommittedOutput.Should().Equal("b0");
    }

    [Fact]
    public async Task A_record_that_started_late_behind_a_slow_call_of_its_key_is_not_charged_when_the_batch_overruns()
    {
        // The processor's clock moves only when the test says so: who is charged depends on the clock alone, never
        // on how quickly a loaded machine runs the handlers.
        var clock = new ManualClock();
        var a0Done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var h = new ProcessorHarness(
            o =>
            {
                Parallel(ProcessingOrder.Key)(o);
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(100);
                o.Retry.MaxAttempts = 1; // one charge makes it poison
            },
            producer: p => p.TransactionTimeout = TimeSpan.FromSeconds(2),
            clock: clock);

        // First calls: a0 runs until the test ends it; a1 (same key, so it waits behind a0) runs until cancelled.
        h.Script.Await = (value, token) => (value, h.Script.TimesSeen(value)) switch
        {
            ("a0", 1) => a0Done.Task.WaitAsync(token),
            ("a1", 1) => Task.Delay(Timeout.Infinite, token),
            _ => Task.CompletedTask,
        };
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k1", "a1");
        h.Broker.Append("in", 0, "k2", "b0");

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("a0") == 1 && h.Script.TimesSeen("b0") == 1, "a0 running, b0 handled");

        // a0 is slow (1.2 s) but ends before the bound (1.6 s: the 2 s timeout less a fifth); a1 starts only then.
        clock.Advance(TimeSpan.FromMilliseconds(1200));
        a0Done.SetResult();
        await Until(() => h.Script.TimesSeen("a1") == 1, "a1 starts once a0 has ended");

        // Past the bound, a1 is still running, though it has run 0.5 s, not half the timeout: the batch was too long, not a1.
        clock.Advance(TimeSpan.FromMilliseconds(500));
        await Until(() => h.Broker.EventsSnapshot().Contains("abort"), "the overrun aborts the batch");
        h.Broker.EventsSnapshot().First(e => e is "abort" or "commit").Should().Be("abort", "the first batch ends in the overrun's abort");

        // From here the clock runs (the batches after the overrun are due by time); every call now ends at once.
        await Until(() => { clock.Advance(TimeSpan.FromMilliseconds(20)); return h.Broker.GroupOffset(P0) == 3; }, "everything commits", 30);
        h.Script.Cancelled.Should().Equal(["a1"], "the overrun cancelled the call still running");
        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().BeEmpty("a1 was in flight at the bound only because it waited behind a0");
        h.CommittedOutput.Should().BeEquivalentTo(["a0", "a1", "b0"], "the batches after the overrun are shorter, and each record commits once");
    }
}
