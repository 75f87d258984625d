using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing.Concurrent;

/// <summary>MaxConcurrency above 1: what order each ProcessingOrder keeps, and what it does not hold up.</summary>
public class ConcurrentOrderingTests
{
    /// <summary>Concurrent handling whose transactions stay open until the test acts.</summary>
    internal static Action<TransactionalProcessorOptions> Parallel(ProcessingOrder order, int maxConcurrency = 4, int maxBatchSize = 100) => o =>
    {
        o.MaxConcurrency = maxConcurrency;
        o.Order = order;
        o.MaxBatchSize = maxBatchSize;
        o.MaxBatchDuration = TimeSpan.FromSeconds(20);
    };

    /// <summary>Makes the handler of each value in <paramref name="gates"/> wait for its gate (or for its token).</summary>
    internal static void HoldAt(HandlerScript script, Dictionary<string, TaskCompletionSource> gates) =>
        script.Await = (value, token) => gates.TryGetValue(value, out var gate) ? gate.Task.WaitAsync(token) : Task.CompletedTask;

    internal static TaskCompletionSource Gate() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    [Fact]
    public async Task Key_order_a_slow_record_holds_up_only_its_own_key_and_a_key_is_handled_in_offset_order()
    {
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Key));
        var a0 = Gate();
        HoldAt(h.Script, new() { ["a0"] = a0 });
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k2", "b0");
        h.Broker.Append("in", 0, "k1", "a1");
        h.Broker.Append("in", 0, "k2", "b1");
        h.Broker.Append("in", 0, "k3", "c0");

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("b1") == 1 && h.Script.TimesSeen("c0") == 1, "the other keys' records are handled while a0 waits");
        h.Script.TimesSeen("a1").Should().Be(0, "a1 has a0's key: it waits for a0");

        a0.SetResult();
        await Until(() => h.Script.TimesSeen("a1") == 1, "a1 is handled once a0 is");
        await h.StopAsync();

        h.Script.Seen.Should().ContainInOrder("a0", "a1").And.ContainInOrder("b0", "b1");
        h.CommittedOutput.Should().BeEquivalentTo("a0", "b0", "a1", "b1", "c0");
        h.Broker.GroupOffset(P0).Should().Be(5);
    }

    [Fact]
    public async Task Key_order_keeps_records_without_a_key_in_partition_order()
    {
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Key));
        var n0 = Gate();
        HoldAt(h.Script, new() { ["n0"] = n0 });
        h.Broker.Append("in", 0, null, "n0");
        h.Broker.Append("in", 0, "k", "k0");
        h.Broker.Append("in", 0, null, "n1");

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("k0") == 1, "the keyed record is handled while n0 waits");
        h.Script.TimesSeen("n1").Should().Be(0, "records without a key keep their partition's order");

        n0.SetResult();
        await Until(() => h.Script.TimesSeen("n1") == 1, "n1 is handled once n0 is");
        await h.StopAsync();
        h.Script.Seen.Should().ContainInOrder("n0", "n1");
        h.CommittedOutput.Should().BeEquivalentTo("n0", "k0", "n1");
    }

    [Fact]
    public async Task Partition_order_a_slow_record_holds_up_its_partition_only()
    {
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Partition));
        var x0 = Gate();
        HoldAt(h.Script, new() { ["x0"] = x0 });
        h.Broker.Append("in", 0, "k1", "x0");
        h.Broker.Append("in", 0, "k2", "x1");
        h.Broker.Append("in", 1, "k1", "y0");
        h.Broker.Append("in", 1, "k2", "y1");

        await h.StartAsync(P0, P1);
        await Until(() => h.Script.TimesSeen("y1") == 1, "the other partition's records are handled while x0 waits");
        h.Script.TimesSeen("x1").Should().Be(0, "x1 is in x0's partition, even with another key");

        x0.SetResult();
        await Until(() => h.Script.TimesSeen("x1") == 1, "x1 is handled once x0 is");
        await h.StopAsync();
        h.Script.Seen.Should().ContainInOrder("x0", "x1").And.ContainInOrder("y0", "y1");
        h.CommittedOutput.Should().BeEquivalentTo("x0", "x1", "y0", "y1");
        h.Broker.GroupOffset(P0).Should().Be(2);
        h.Broker.GroupOffset(P1).Should().Be(2);
    }

    [Fact]
    public async Task Unordered_a_slow_record_holds_up_nothing_not_even_its_key()
    {
        await using var h = new ProcessorHarness(Parallel(ProcessingOrder.Unordered));
        var a0 = Gate();
        HoldAt(h.Script, new() { ["a0"] = a0 });
        h.Broker.Append("in", 0, "k1", "a0");
        h.Broker.Append("in", 0, "k1", "a1");

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("a1") == 1, "a1 is handled while a0, with the same key, waits");
        h.Broker.GroupOffset(P0).Should().BeNull("nothing commits while a0 runs");

        a0.SetResult();
        await h.StopAsync();
        h.CommittedOutput.Should().BeEquivalentTo("a0", "a1");
        h.Broker.GroupOffset(P0).Should().Be(2);
    }

    [Fact]
    public async Task Consumption_pauses_at_MaxBufferedRecords_and_resumes_as_records_are_handled()
    {
        await using var h = new ProcessorHarness(o =>
        {
            Parallel(ProcessingOrder.Partition, maxConcurrency: 2)(o);
            o.MaxBufferedRecords = 2;
        });
        var v0 = Gate();
        HoldAt(h.Script, new() { ["v0"] = v0 });
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await Until(() => h.Consumer.Position(P0).Value == 3, "v0 is in flight and two records are buffered behind it");
        await Task.Delay(200); // no event marks a Consume that does not happen: give the loop time to (wrongly) go on
        h.Consumer.Position(P0).Value.Should().Be(3, "the buffer is full: nothing more is consumed");
        h.Consumer.Pauses.Should().BeGreaterThan(0, "the partition is paused while Consume goes on being called");

        v0.SetResult();
        await Until(() => h.Script.TimesSeen("v9") == 1, "the rest is consumed and handled");
        await h.StopAsync();
        h.CommittedOutput.Should().Equal(Enumerable.Range(0, 10).Select(i => "v" + i), "one partition in partition order: in order");
    }

    [Theory]
    [InlineData("revoke")]
    [InlineData("lost")]
    public async Task A_partition_that_leaves_while_paused_is_read_again_when_it_comes_back(string leaving)
    {
        // librdkafka may keep a pause across a rebalance: a partition revoked while the full buffer had it paused, and
        // assigned back after the buffer drained (the resume covering only what was assigned then), stayed paused for
        // good: its records were never read again.
        await using var h = new ProcessorHarness(o =>
        {
            Parallel(ProcessingOrder.Partition, maxConcurrency: 2)(o);
            o.MaxBufferedRecords = 2;
        });
        var v0 = Gate();
        HoldAt(h.Script, new() { ["v0"] = v0 });
        h.Broker.AppendMany("in", 0, 5);

        await h.StartAsync(P0, P1);
        h.Consumer.PauseSurvivesUnassign = true; // read when P1 is unassigned, below
        await Until(() => h.Consumer.Pauses > 0, "v0 is held and the buffer is full: the assignment is paused");
        h.Consumer.Rebalance(leaving, P1);
        await Until(() => h.Broker.EventsSnapshot().Contains(leaving == "revoke" ? "revoke-begin" : "lost"), $"P1 is {leaving}");
        v0.SetResult();
        await Until(() => h.Script.TimesSeen("v4") >= 1, "the buffer drains and P0 is resumed");

        h.Broker.Append("in", 1, "k", "p1-after");
        h.Consumer.Rebalance("assign", P1);
        await Until(() => h.Script.TimesSeen("p1-after") == 1, "P1, assigned back, is read again");
        await h.StopAsync();
        h.CommittedOutput.Should().Contain("p1-after");
    }
}
