using System.Diagnostics;
using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// A transaction failure (one no record caused) while committing inside a revoke callback or on a graceful stop
/// aborts and rewinds at once: the processor's backoff (Retry, here a minute) would hold the rebalance, and with it
/// max.poll.interval.ms and every other member, or hold the stop until ShutdownTimeout runs out. The loop's everyday
/// commit keeps backing off.
/// </summary>
public class RevokeWithoutBackoffTests
{
    private static readonly TimeSpan Backoff = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(10);
    private static readonly TopicPartition In0 = new("in", 0);

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task A_commit_failing_on_revoke_aborts_without_backing_off_and_the_records_are_handled_again_at_once(int maxConcurrency)
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 1);
        Seed(kafka, 3);
        var script = new HandlerScript();
        using var app = App(kafka, script, maxConcurrency);
        await app.StartAsync();
        await ProcessorHarness.Until(() => script.Seen.Count == 3, "the three records are handled in the open batch");

        kafka.FailNextCommit(TransactionalId(app), ErrorCode.TransactionCoordinatorFenced); // abortable: retried, nobody charged
        var revoked = Stopwatch.StartNew();
        kafka.ForceRebalance("copiers");
        await ProcessorHarness.Until(() => script.TimesSeen("v0") == 2, "the revoke's failed commit was aborted and the records read again", Prompt.TotalSeconds);
        revoked.Elapsed.Should().BeLessThan(Prompt, "the revoke must not wait out a backoff of {0}", Backoff);

        kafka.ReadTopic("out").Should().BeEmpty("the batch whose commit failed was aborted; the next one is still open");
        kafka.CommittedOffset("copiers", In0).Should().BeNull("nothing committed: the records are handled again");
        await app.StopAsync();
        kafka.ReadTopic("out").Select(r => r.ValueText).Should().Equal(["v0", "v1", "v2"], "the stop commits the records handled again, once each");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task A_commit_failing_on_a_graceful_stop_aborts_without_backing_off(int maxConcurrency)
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 1);
        Seed(kafka, 3);
        var script = new HandlerScript();
        using var app = App(kafka, script, maxConcurrency);
        await app.StartAsync();
        await ProcessorHarness.Until(() => script.Seen.Count == 3, "the three records are handled in the open batch");

        kafka.FailNextCommit(TransactionalId(app), ErrorCode.TransactionCoordinatorFenced);
        var stopping = Stopwatch.StartNew();
        await app.StopAsync();
        stopping.Elapsed.Should().BeLessThan(Prompt, "the stop must wait out neither the backoff ({0}) nor ShutdownTimeout", Backoff);

        kafka.ReadTopic("out").Should().BeEmpty("the commit failed: the batch was aborted, nothing of it is visible");
        kafka.CommittedOffset("copiers", In0).Should().BeNull("the offsets were not committed: the next owner handles the records again");
        script.TimesSeen("v0").Should().Be(1, "a stop takes no new record, nor reads the aborted ones again");
    }

    private static string TransactionalId(IHost app) =>
        app.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty).TransactionalId!;

    private static IHost App(InMemoryKafkaCluster kafka, HandlerScript script, int maxConcurrency)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(script);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(45));
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
                o.MaxConcurrency = maxConcurrency;
                o.MaxBatchSize = 1000;
                o.MaxBatchDuration = TimeSpan.FromSeconds(25); // one open transaction: only the revoke or the stop ends it
                o.Retry.BaseDelay = Backoff;
                o.Retry.MaxDelay = Backoff;
                o.Retry.UseJitter = false; // the full minute each time, never a lucky short one
                o.ShutdownTimeout = TimeSpan.FromSeconds(30); // above Prompt: a stop held until the drain ends fails too
            });
        return builder.Build();
    }

    private static void Seed(InMemoryKafkaCluster kafka, int count)
    {
        var producer = kafka.CreateProducer(new ProducerConfig());
        for (var i = 0; i < count; i++)
        {
            producer.Produce(In0, new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = System.Text.Encoding.UTF8.GetBytes("v" + i) });
        }
    }
}
