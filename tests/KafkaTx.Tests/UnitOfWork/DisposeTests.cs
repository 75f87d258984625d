using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Processing;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>
/// Disposal while a call runs: it waits (bounded) for the call, so that librdkafka's handle is never used by two calls
/// at once (an abort racing a commit) nor disposed under a running call. The fake producer records any overlap.
/// </summary>
public class DisposeTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    /// <summary>The log event Dispose writes when it waits for a call in flight.</summary>
    private const int DisposeWaitingEvent = 126;

    private static Message<string, string> Record(string key) => new() { Key = key, Value = "v" };

    /// <summary>Makes the named blocking call wait until released; returns when it is running.</summary>
    private static (Task Running, ManualResetEventSlim Release) Hold(FakeProducer producer, string call)
    {
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new ManualResetEventSlim();
        producer.OnBlockingCall = (c, _) =>
        {
            if (c == call && running.TrySetResult())
            {
                release.Wait(Deadline);
            }
        };
        return (running.Task, release);
    }

    /// <summary>Until Dispose either waits for the call (it logs so) or has already done something under it.</summary>
    private static Task DisposeActed(ListLogger logger, FakeProducer producer, Task disposing) =>
        ProcessorHarness.Until(
            () => logger.Entries.Any(e => e.Id.Id == DisposeWaitingEvent) || producer.Overlaps.Count > 0 || disposing.IsCompleted,
            "Dispose waits for the call in flight, or acts under it");

    [Theory]
    [InlineData("SendOffsets", false)]
    [InlineData("SendOffsets", true)]
    [InlineData("Commit", false)]
    [InlineData("Commit", true)]
    public async Task Disposing_while_an_explicit_call_runs_waits_for_it_and_never_overlaps_it(string call, bool synchronousDispose)
    {
        var logger = new ListLogger();
        var (unit, factory) = TestUnits.Create(logger: logger);
        await unit.InitializeAsync();
        var producer = factory.Current;
        var (running, release) = Hold(producer, call);
        using var _ = release;
        unit.BeginTransaction();
        unit.Produce("orders", Record("o-1"));
        var inFlight = call == "Commit"
            ? unit.CommitAsync()
            : unit.SendOffsetsAsync([new TopicPartitionOffset("in", 0, 10)], new FakeGroupMetadata());
        await running.WaitAsync(Deadline);

        var disposing = synchronousDispose ? Task.Run(unit.Dispose) : unit.DisposeAsync().AsTask();
        await DisposeActed(logger, producer, disposing);
        release.Set();
        await inFlight.WaitAsync(Deadline);
        await disposing.WaitAsync(Deadline);

        producer.Overlaps.Should().BeEmpty("no call may use the producer while another runs, and none may dispose it under one");
        unit.State.Should().Be(TransactionState.Disposed);
        producer.IsDisposed.Should().BeTrue();
        if (call == "Commit")
        {
            producer.Committed.Select(r => r.KeyText).Should().Equal("o-1");
            producer.Calls.Should().ContainInOrder("Commit", "Dispose").And.NotContain("Abort");
        }
        else
        {
            producer.Committed.Should().BeEmpty();
            producer.Calls.Should().ContainInOrder("SendOffsets", "Abort", "Dispose");
            await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<ObjectDisposedException>("calls after Dispose began are refused");
        }
    }

    [Fact]
    public async Task Disposing_during_an_ExecuteAsync_commit_slower_than_AbortTimeout_waits_for_the_commit()
    {
        var logger = new ListLogger();
        var (unit, factory) = TestUnits.Create(o => o.AbortTimeout = TimeSpan.FromMilliseconds(50), logger: logger);
        await unit.InitializeAsync();
        var producer = factory.Current;
        var (running, release) = Hold(producer, "Commit");
        using var _ = release;
        var call = unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("orders", Record("o-1"));
            return ValueTask.CompletedTask;
        });
        await running.WaitAsync(Deadline);

        var disposing = unit.DisposeAsync().AsTask();
        await DisposeActed(logger, producer, disposing);
        release.Set();
        await call.WaitAsync(Deadline);
        await disposing.WaitAsync(Deadline);

        producer.Overlaps.Should().BeEmpty();
        producer.Committed.Select(r => r.KeyText).Should().Equal("o-1");
        producer.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public async Task When_the_call_in_flight_outlasts_the_bounded_wait_the_unit_is_disposed_and_its_producer_when_the_call_returns()
    {
        var (unit, factory) = TestUnits.Create(o =>
        {
            o.CommitTimeout = TimeSpan.FromMilliseconds(50);
            o.AbortTimeout = TimeSpan.FromMilliseconds(50);
        });
        await unit.InitializeAsync();
        var producer = factory.Current;
        var working = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var call = unit.ExecuteAsync(async (scope, _) =>
        {
            scope.Produce("orders", Record("o-1"));
            working.SetResult();
            await release.Task;
        });
        await working.Task.WaitAsync(Deadline);

        await unit.DisposeAsync().AsTask().WaitAsync(Deadline); // gives up after CommitTimeout + AbortTimeout

        unit.State.Should().Be(TransactionState.Disposed);
        producer.IsDisposed.Should().BeFalse("the call in flight may still use it");
        await unit.Awaiting(u => u.ExecuteAsync((_, _) => ValueTask.CompletedTask)).Should().ThrowAsync<ObjectDisposedException>();
        release.SetResult();
        await call.Awaiting(c => c.WaitAsync(Deadline)).Should().ThrowAsync<ObjectDisposedException>("the unit was disposed before the work returned: nothing is committed");
        await ProcessorHarness.Until(() => producer.IsDisposed, "the producer is disposed once the call has returned");
        producer.Committed.Should().BeEmpty();
        producer.Overlaps.Should().BeEmpty();
    }

    [Fact]
    public async Task Callers_queued_behind_the_call_in_flight_are_refused_once_Dispose_begins()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        var working = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = unit.ExecuteAsync(async (scope, _) =>
        {
            scope.Produce("orders", Record("o-1"));
            working.SetResult();
            await release.Task;
        });
        await working.Task.WaitAsync(Deadline);
        var queued = unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("orders", Record("o-2"));
            return ValueTask.CompletedTask;
        });

        var disposing = unit.DisposeAsync().AsTask();
        release.SetResult();
        await first.WaitAsync(Deadline);
        await disposing.WaitAsync(Deadline);

        await queued.Awaiting(q => q.WaitAsync(Deadline)).Should().ThrowAsync<ObjectDisposedException>();
        producer.Committed.Select(r => r.KeyText).Should().Equal("o-1");
        producer.Overlaps.Should().BeEmpty();
    }
}
