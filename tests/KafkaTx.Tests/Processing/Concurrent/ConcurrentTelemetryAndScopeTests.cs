using Microsoft.Extensions.DependencyInjection;
using KafkaTx.Tests.Fakes;
using static KafkaTx.Tests.Processing.Concurrent.ConcurrentOrderingTests;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing.Concurrent;

/// <summary>MaxConcurrency above 1: a handler instance per concurrent call, and the gauges and histogram of the mode.</summary>
public class ConcurrentTelemetryAndScopeTests
{
    [Fact]
    public async Task Concurrent_calls_never_share_a_handler_instance_and_so_never_a_scoped_service()
    {
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Key));
        var a0 = Gate();
        var b0 = Gate();
        HoldAt(h.Script, new() { ["a0"] = a0, ["b0"] = b0 });
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");

        await h.StartAsync();
        await Until(() => h.Script.HandledBy.Count == 2, "both calls run at once");
        var handlers = h.Script.HandledBy.ToDictionary(x => x.Value, x => x.Handler);
        handlers["a0"].Should().NotBeSameAs(handlers["b0"]);

        a0.SetResult();
        b0.SetResult();
        await h.StopAsync();
        h.CommittedOutput.Should().BeEquivalentTo("a0", "b0");
    }

    [Fact]
    public async Task Records_in_flight_buffered_records_the_deepest_lane_and_the_barrier_wait_are_measured()
    {
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Key, maxBatchSize: 3));
        using var metrics = new MetricsRecorder(h.Instrumentation);
        var a0 = Gate();
        HoldAt(h.Script, new() { ["a0"] = a0 });
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k1", "a1");
        h.Broker.Append("in", 0, "k1", "a2");

        await h.StartAsync();
        await Until(() => metrics.Observe("kafkatx.processor.records.buffered") is [{ Value: 2 }], "a1 and a2 wait behind a0");
        metrics.Observe("kafkatx.processor.records.in_flight").Should().ContainSingle().Which.Value.Should().Be(1);
        metrics.Observe("kafkatx.processor.lane.depth.high_water").Should().ContainSingle().Which.Value.Should().Be(2);

        a0.SetResult();
        await Until(() => h.Broker.GroupOffset(P0) == 3, "the batch commits");
        metrics.Values("kafkatx.processor.barrier.wait.duration").Should().ContainSingle().Which.Should().BeGreaterThanOrEqualTo(0);
        metrics.Observe("kafkatx.processor.records.in_flight").Should().ContainSingle().Which.Value.Should().Be(0);

        await h.StopAsync();
        metrics.Observe("kafkatx.processor.records.buffered").Should().BeEmpty("a stopped processor reports nothing");
    }

    /// <summary>A scoped service that counts its disposals; the second one created throws from Dispose.</summary>
    private sealed class DisposalProbe(DisposalCounter counter) : IDisposable
    {
        private readonly bool _throws = Interlocked.Increment(ref counter.Created) == 2; // a call slot's own scope, disposed before the batch's

        public void Dispose()
        {
            Interlocked.Increment(ref counter.Disposed);
            if (_throws)
            {
                throw new InvalidOperationException("a scoped service failed to dispose");
            }
        }
    }

    private sealed class DisposalCounter
    {
        public int Created;
        public int Disposed;
    }

    [Fact]
    public async Task Every_call_slots_scope_is_disposed_when_the_batch_ends_even_if_one_scoped_service_throws_on_dispose()
    {
        var counter = new DisposalCounter();
        await using var h = new ProcessorHarness(
            Parallel(ProcessingOrder.Key),
            services: s => s
                .AddSingleton(counter)
                .AddScoped<DisposalProbe>()
                .AddScoped(sp =>
                {
                    sp.GetRequiredService<DisposalProbe>(); // every handler's scope holds a probe
                    return new CopyHandler(sp.GetRequiredService<HandlerScript>());
                }));
        var a0 = Gate();
        var b0 = Gate();
        HoldAt(h.Script, new() { ["a0"] = a0, ["b0"] = b0 });
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");

        await h.StartAsync();
        await Until(() => h.Script.HandledBy.Count == 2, "both calls run at once, each in a scope of its own");
        a0.SetResult();
        b0.SetResult();
        await Until(() => h.Script.Seen.Count == 2 && h.Loop.State == ProcessorState.Running, "both calls completed");
        await h.StopAsync(); // the stop ends the batch, and disposes its scopes

        counter.Created.Should().BeGreaterThanOrEqualTo(2);
        counter.Disposed.Should().Be(counter.Created, "a scope whose service throws on dispose does not keep the other scopes from being disposed");
    }
}
