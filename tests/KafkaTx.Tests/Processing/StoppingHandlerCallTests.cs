using System.Collections.Concurrent;
using KafkaTx.Processing;
using KafkaTx.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing;

/// <summary>The sequential loop's and the batch handler's bounded wait for a call a stop has cancelled.</summary>
public class StoppingHandlerCallTests
{
    [Fact]
    public async Task A_call_that_completes_as_its_shutdown_bound_runs_out_has_its_own_outcome_not_a_timeout()
    {
        // The bound's timer fires, then the call completes before the wait's continuation runs: the old filter
        // (catch TimeoutException when the call is not completed) let the TimeoutException out, so a call that had
        // completed was failed (and, in a batch handler, charged) as if it had overrun.
        var timers = new ManualTimers();
        var telemetry = new ProcessorTelemetry("orders", "group", "tx-orders", new KafkaTxInstrumentation(), NullLogger.Instance, timers);
        var stopping = new StoppingHandlerCall(TimeSpan.FromSeconds(5), telemetry, timers);
        await using var services = new ServiceCollection().BuildServiceProvider();
        await using var batch = OpenBatch<string, string>.Open(services.GetRequiredService<IServiceScopeFactory>(), 0, null, []);
        using var drain = new CancellationTokenSource();
        var call = new TaskCompletionSource();
        var context = new QueuedContext();

        var waiting = context.Run(() => stopping.AwaitAsync(new ValueTask(call.Task), batch, new RecordKey(P0, 0), drain.Token).AsTask());
        await drain.CancelAsync(); // the stop's ShutdownTimeout ran out: the call gets ShutdownTimeout more
        context.RunQueued();
        timers.Created.Should().ContainSingle("the second wait is bounded by ShutdownTimeout");

        timers.FireAll();      // the bound runs out...
        call.SetResult();      // ...and the call completes before the wait goes on
        context.RunQueued();

        waiting.IsCompletedSuccessfully.Should().BeTrue($"the call completed, so it did not overrun (it ended {waiting.Status}: {waiting.Exception?.InnerException?.GetType().Name})");
    }

    /// <summary>A synchronization context whose posts wait until the test runs them, on its own thread.</summary>
    private sealed class QueuedContext : SynchronizationContext
    {
        private readonly ConcurrentQueue<(SendOrPostCallback Callback, object? State)> _posted = new();

        public override void Post(SendOrPostCallback d, object? state) => _posted.Enqueue((d, state));

        public T Run<T>(Func<T> action)
        {
            var previous = Current;
            SetSynchronizationContext(this);
            try
            {
                return action();
            }
            finally
            {
                SetSynchronizationContext(previous);
            }
        }

        public void RunQueued() => Run(() =>
        {
            while (_posted.TryDequeue(out var posted))
            {
                posted.Callback(posted.State);
            }

            return 0;
        });
    }

    /// <summary>A clock whose timers fire only when the test says.</summary>
    private sealed class ManualTimers : TimeProvider
    {
        public ConcurrentQueue<(TimerCallback Callback, object? State)> Created { get; } = new();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Created.Enqueue((callback, state));
            return new NeverTimer();
        }

        public void FireAll()
        {
            foreach (var (callback, state) in Created)
            {
                callback(state);
            }
        }

        private sealed class NeverTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
