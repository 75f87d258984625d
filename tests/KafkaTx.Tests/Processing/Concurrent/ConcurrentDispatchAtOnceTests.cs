using static KafkaTx.Tests.Processing.Concurrent.ConcurrentOrderingTests;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing.Concurrent;

/// <summary>
/// MaxConcurrency above 1: a record read while nothing waits in the buffer and a slot is free is dispatched at once,
/// without queueing; the order it keeps is the buffer's all the same.
/// </summary>
public class ConcurrentDispatchAtOnceTests
{
    [Fact]
    public async Task A_record_dispatched_as_it_is_read_holds_up_its_key_while_its_call_runs()
    {
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Key));
        var b0 = Gate();
        HoldAt(h.Script, new() { ["b0"] = b0 });
        h.Broker.Append("in", 0, "k1", "a0"); // read before the batch is open: it goes through the buffer
        h.Broker.Append("in", 0, "k2", "b0"); // read with nothing buffered and a slot free: dispatched at once, its call waits
        h.Broker.Append("in", 0, "k2", "b1"); // nothing buffered either, but its key has a call running
        h.Broker.Append("in", 0, "k3", "c0");

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("c0") == 1, "the other keys' records are handled while b0 waits");
        h.Script.TimesSeen("b1").Should().Be(0, "b1 has b0's key: it waits for b0's call to end");

        b0.SetResult();
        await Until(() => h.Script.TimesSeen("b1") == 1, "b1 is handled once b0 is");
        await h.StopAsync();

        h.Script.Seen.Should().ContainInOrder("b0", "b1");
        h.CommittedOutput.Should().BeEquivalentTo("a0", "b0", "b1", "c0");
        h.Broker.GroupOffset(P0).Should().Be(4);
    }

    [Fact]
    public async Task Records_whose_calls_complete_at_once_commit_in_batches_of_MaxBatchSize_in_offset_order()
    {
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Key, maxConcurrency: 4, maxBatchSize: 10));
        for (var i = 0; i < 100; i++)
        {
            h.Broker.Append("in", 0, "k" + (i % 7), "v" + i);
        }

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 100, "every record is committed");
        await h.StopAsync();

        h.Script.Seen.Should().Equal(Enumerable.Range(0, 100).Select(i => "v" + i), "calls that complete at once are made in the order read");
        h.CommittedOutput.Should().Equal(Enumerable.Range(0, 100).Select(i => "v" + i));
        var offsets = h.Factory.Producers.SelectMany(p => p.CommittedOffsets).Select(o => o.Single().Offset.Value).ToList();
        offsets.Zip(offsets.Skip(1), (before, after) => after - before).Prepend(offsets[0])
            .Should().OnlyContain(n => n > 0 && n <= 10, "no batch holds more than MaxBatchSize records");
    }
}
