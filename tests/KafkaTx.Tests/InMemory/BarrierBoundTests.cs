using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// The commit barrier's bound on a graceful stop and on a revoke (ShutdownTimeout): a handler call that ignores its
/// token past it is abandoned, and its batch is aborted, never committed: nothing of the batch (neither the other
/// calls' writes nor the abandoned call's own, written before it hung) is visible to read_committed, the offsets do not
/// move past it, and the record is handled again by the next owner.
/// </summary>
public class BarrierBoundTests
{
    private static readonly TopicPartition In0 = new("in", 0);

    [Fact]
    public async Task A_call_ignoring_its_token_past_ShutdownTimeout_on_a_graceful_stop_aborts_its_batch_and_is_handled_again_next_time()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 1);
        Seed(kafka, 4);
        var hung = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var script = HangingOnFirstV1(hung);

        using (var first = App(kafka, script))
        {
            await first.StartAsync();
            await ProcessorHarness.Until(() => script.Seen.Distinct().Count() == 4, "every record is dispatched, v1's call hangs");
            await first.StopAsync(); // the drain runs out, v1's call is cancelled, ignores it, and is abandoned
        }

        kafka.ReadTopic("out").Should().BeEmpty("the batch with an abandoned call was aborted: none of its writes, v1's first one included, is visible");
        kafka.CommittedOffset("copiers", In0).Should().BeNull("the offsets did not move past the abandoned record");
        hung.SetResult(); // the abandoned call ends; its late write is refused

        script.Await = null;
        using (var second = App(kafka, script))
        {
            await second.StartAsync();
            await ProcessorHarness.Until(() => script.Seen.Count == 8, "the next owner handles the four records again");
            await second.StopAsync(); // its batch commits as it stops
        }

        kafka.CommittedOffset("copiers", In0).Should().Be(4);

        script.TimesSeen("v1").Should().Be(2, "the abandoned record was handled again by the next owner");
        kafka.ReadTopic("out").Select(r => r.ValueText).Should().BeEquivalentTo(["v0", "v1", "v2", "v3"], "the second run's output only (no '-first' of the aborted batch), once each");
    }

    [Fact]
    public async Task A_call_ignoring_its_token_past_ShutdownTimeout_on_a_revoke_aborts_its_batch_and_is_handled_again()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 1);
        Seed(kafka, 4);
        var hung = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var script = HangingOnFirstV1(hung);
        using var app = App(kafka, script);
        await app.StartAsync();
        await ProcessorHarness.Until(() => script.Seen.Distinct().Count() == 4, "every record is dispatched, v1's call hangs");

        kafka.ForceRebalance("copiers"); // the revoke's barrier waits ShutdownTimeout, cancels, waits ShutdownTimeout more, abandons
        await ProcessorHarness.Until(() => script.TimesSeen("v0") == 2, "the revoke aborted the batch and the records are read again");
        kafka.ReadTopic("out").Should().BeEmpty("the batch with an abandoned call was aborted, not committed on revoke");
        kafka.CommittedOffset("copiers", In0).Should().BeNull("the offsets did not move past the abandoned record");

        hung.SetResult(); // the abandoned call ends: its lane is free, v1 is handled again
        await ProcessorHarness.Until(() => script.TimesSeen("v1") == 2, "v1 is handled again once its abandoned call has ended");
        await app.StopAsync();

        kafka.CommittedOffset("copiers", In0).Should().Be(4);
        kafka.ReadTopic("out").Select(r => r.ValueText).Should().BeEquivalentTo(
            ["v0-first", "v0", "v1-first", "v1", "v2-first", "v2", "v3-first", "v3"], "each record's two writes committed once, none of the aborted batch's");
    }

    /// <summary>Every call writes before its await; v1's first call then hangs, ignoring its token, until <paramref name="hung"/> completes.</summary>
    private static HandlerScript HangingOnFirstV1(TaskCompletionSource hung)
    {
        var script = new HandlerScript { WriteBeforeAwait = true };
        script.Await = (value, _) => value == "v1" && script.TimesSeen("v1") == 1 ? hung.Task : Task.CompletedTask;
        return script;
    }

    private static IHost App(InMemoryKafkaCluster kafka, HandlerScript script)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(script);
        builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "in-memory";
                o.TransactionalIdPrefix = "copier";
                o.InstanceId = "0";
            })
            .UseInMemoryKafka(kafka)
            .AddTransactionalProcessor<CopyHandler>(o =>
            {
                o.Topics.Add("in");
                o.GroupId = "copiers";
                o.MaxConcurrency = 4;
                o.MaxBatchSize = 1000;
                o.MaxBatchDuration = TimeSpan.FromSeconds(25); // one open transaction: only the revoke or the stop ends it
                o.ShutdownTimeout = TimeSpan.FromMilliseconds(300);
                o.Retry.BaseDelay = TimeSpan.Zero;
            });
        return builder.Build();
    }

    private static void Seed(InMemoryKafkaCluster kafka, int count)
    {
        var producer = kafka.CreateProducer(new ProducerConfig());
        for (var i = 0; i < count; i++)
        {
            // A key each: in key order every record has a lane of its own, so v1's hanging call holds up no other.
            producer.Produce(In0, new Message<byte[]?, byte[]?> { Key = System.Text.Encoding.UTF8.GetBytes("k" + i), Value = System.Text.Encoding.UTF8.GetBytes("v" + i) });
        }
    }
}
