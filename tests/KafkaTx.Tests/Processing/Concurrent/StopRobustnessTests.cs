using Confluent.Kafka;
using KafkaTx.Processing.Concurrent;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using static KafkaTx.Tests.Processing.Concurrent.ConcurrentOrderingTests;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing.Concurrent;

/// <summary>
/// A stop that cannot end the batch cleanly: a handler call that ignores its token (sequential and concurrent), and
/// ending the batch that throws. Either way the batch is aborted, never committed, and the consumer is closed.
/// </summary>
public class StopRobustnessTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task A_stop_abandons_a_call_that_ignores_its_token_aborts_closes_the_consumer_and_disposes_the_call_s_scope_when_it_ends(int maxConcurrency)
    {
        var counter = new ScopeCounter();
        var stuck = Gate();
        await using var h = new ProcessorHarness(
            o =>
            {
                Parallel(ProcessingOrder.Key, maxConcurrency)(o);
                o.ShutdownTimeout = TimeSpan.FromMilliseconds(200);
            },
            services: s => s.AddSingleton(counter).AddScoped<ScopeProbe>().AddScoped(sp =>
            {
                sp.GetRequiredService<ScopeProbe>(); // every handler's scope holds a probe
                return new CopyHandler(sp.GetRequiredService<HandlerScript>());
            }));
        h.Script.Await = (value, _) => value == "a0" ? stuck.Task : Task.CompletedTask; // ignores its token
        h.Broker.Append("in", 0, "k2", "b0");
        h.Broker.Append("in", 0, "k1", "a0");
        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("a0") == 1, "a0's call hangs");

        await h.StopAsync(); // before: it never ended

        h.Loop.State.Should().Be(ProcessorState.Stopped);
        h.Consumer.IsClosed.Should().BeTrue();
        h.Broker.EventsSnapshot().Should().Contain("abort").And.NotContain("commit");
        h.CommittedOutput.Should().BeEmpty();
        h.Unit.State.Should().Be(TransactionState.Ready, "no transaction is left open");
        counter.Disposed.Should().Be(counter.Created - 1, "the abandoned call's scope stays alive while the call runs");

        stuck.SetResult();
        await Until(() => counter.Disposed == counter.Created, "the abandoned call's scope is disposed once it ends");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task A_stop_whose_batch_end_throws_still_closes_the_consumer_and_ends_faulted(int maxConcurrency)
    {
        // A scoped service throwing from Dispose (anything but InvalidOperationException) escaped the shutdown: the
        // consumer was never closed (its partitions held for a session timeout) and the processor stayed Running.
        await using var h = new ProcessorHarness(
            Parallel(ProcessingOrder.Key, maxConcurrency),
            services: s => s.AddScoped<FailingDisposal>().AddScoped(sp =>
            {
                sp.GetRequiredService<FailingDisposal>();
                return new CopyHandler(sp.GetRequiredService<HandlerScript>());
            }));
        h.Broker.Append("in", 0, "k1", "a0");
        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("a0") == 1, "a0 is handled");

        await h.StopAsync();

        h.Consumer.IsClosed.Should().BeTrue();
        h.Loop.State.Should().Be(ProcessorState.Faulted);
        h.Loop.Failure.Should().BeOfType<NotSupportedException>();
        h.Unit.State.Should().Be(TransactionState.Ready, "no transaction is left open");
    }

    [Fact]
    public async Task A_call_s_scope_passes_writes_through_until_closed_then_refuses_them_naming_the_record_and_why()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        await using var _ = unit;
        unit.BeginTransaction();
        var call = Call(unit);

        call.Scope.Produce("out", new Message<string, string> { Value = "before" });
        call.Close("its batch was aborted");

        var late = () => call.Scope.Produce("out", new Message<string, string> { Value = "late" });
        late.Should().Throw<InvalidOperationException>().WithMessage("*in [0] @7*its batch was aborted*");
        producer.OpenRecords().Select(r => r.ValueText).Should().Equal("before");
    }

    [Fact]
    public async Task A_scope_kept_past_its_call_is_refused_once_its_slot_runs_the_next_call_whose_writes_pass()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        await using var _ = unit;
        unit.BeginTransaction();
        var call = Call(unit);
        var kept = call.Scope; // a handler that leaves a task running with its scope
        kept.Produce("out", new Message<string, string> { Value = "first" });
        call.EndedAtOnce(ValueTask.CompletedTask, activity: null);

        var raw = new ConsumeResult<byte[]?, byte[]?> { Topic = "in", Partition = 0, Offset = 8, Message = new Message<byte[]?, byte[]?>() };
        var next = call.Begin(new BufferedRecord(raw, LaneId.Of(ProcessingOrder.Key, raw)), 0); // the slot's next call

        var late = () => kept.Produce("out", new Message<string, string> { Value = "late" });
        late.Should().Throw<InvalidOperationException>().WithMessage("*in [0] @7*its call has returned*");
        next.Produce("out", new Message<string, string> { Value = "second" });
        producer.OpenRecords().Select(r => r.ValueText).Should().Equal("first", "second");
    }

    [Fact]
    public async Task Closing_a_call_s_scope_waits_for_a_write_in_progress_so_that_it_cannot_land_after_the_transaction_ends()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        await using var _ = unit;
        unit.BeginTransaction();
        var call = Call(unit);
        var queueFull = true;
        producer.QueueFull = () => Volatile.Read(ref queueFull);

        var writing = Task.Run(() => call.Scope.Produce("out", new Message<string, string> { Value = "slow" }));
        await Until(() => producer.QueueFullRefusals > 0, "the write waits for room in the queue");
        var closing = Task.Run(() => call.Close("its batch was aborted"));
        await Task.Delay(100); // nothing marks a Close that has not returned
        closing.IsCompleted.Should().BeFalse("the write in progress holds the close back");

        Volatile.Write(ref queueFull, false);
        await writing.WaitAsync(TimeSpan.FromSeconds(10));
        await closing.WaitAsync(TimeSpan.FromSeconds(10));
        producer.OpenRecords().Select(r => r.ValueText).Should().Equal("slow");
    }

    private static HandlerCall Call(ITransactionalUnitOfWork unit)
    {
        var raw = new ConsumeResult<byte[]?, byte[]?> { Topic = "in", Partition = 0, Offset = 7, Message = new Message<byte[]?, byte[]?>() };
        return new HandlerCall(new BufferedRecord(raw, LaneId.Of(ProcessingOrder.Key, raw)), 0, 0, unit);
    }

    private sealed class ScopeCounter
    {
        public int Created;
        public int Disposed;
    }

    /// <summary>Counts the scopes created and disposed.</summary>
    private sealed class ScopeProbe : IDisposable
    {
        private readonly ScopeCounter _counter;

        public ScopeProbe(ScopeCounter counter)
        {
            _counter = counter;
            Interlocked.Increment(ref counter.Created);
        }

        public void Dispose() => Interlocked.Increment(ref _counter.Disposed);
    }

    private sealed class FailingDisposal : IDisposable
    {
        public void Dispose() => throw new NotSupportedException("a scoped service failed to dispose");
    }
}
