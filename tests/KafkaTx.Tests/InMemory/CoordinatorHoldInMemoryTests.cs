using System.Runtime.CompilerServices;
using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using KafkaTx.Tests.Processing.Batching;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// Issue 19: while the group coordinator does not answer, the processor hands out no work it cannot commit. After the
/// batch whose offsets could not be sent is aborted, it waits (health Degraded) and runs no handler until the
/// coordinator answers again; then it copies the rest exactly once. Record, concurrent and batch handling each.
/// </summary>
public class CoordinatorHoldInMemoryTests
{
    private static readonly TimeSpan TransactionTimeout = TimeSpan.FromSeconds(4); // margins of a second: the full suite loads two cores

    public enum Mode
    {
        Record,
        Concurrent,
        Batch,
    }

    [Theory]
    [InlineData(Mode.Record)]
    [InlineData(Mode.Concurrent)]
    [InlineData(Mode.Batch)]
    public async Task While_the_coordinator_does_not_answer_no_handler_runs_and_health_is_Degraded_then_the_rest_is_copied_once(Mode mode)
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 3);
        Seed(kafka, 0, 30);
        var slow = new StrongBox<bool>();
        Task Wait(CancellationToken token) => Volatile.Read(ref slow.Value) ? Task.Delay(TransactionTimeout / 5, token) : Task.CompletedTask;
        var records = new HandlerScript { Await = (_, token) => Wait(token) };
        var batches = new BatchScript { Await = (_, token) => Wait(token) };
        Func<int> handlerCalls = mode == Mode.Batch ? () => batches.CallCount : () => records.Seen.Count;
        using var app = ProcessorApp(kafka, mode, records, batches);
        await app.StartAsync();
        var processor = app.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        await ProcessorHarness.Until(() => processor.CommittedRecords >= 30, "the first thirty are committed");
        (await HealthAsync(app)).Status.Should().Be(HealthStatus.Healthy);

        Volatile.Write(ref slow.Value, true);
        kafka.SetGroupCoordinatorUnavailable("copiers", true);
        var before = handlerCalls();
        Seed(kafka, 30, 30);
        await UntilAsync(async () => (await HealthAsync(app)).Data.ContainsKey("processor_waiting_for_group_coordinator_seconds"), "the processor waits for the coordinator (health Degraded)", 4 * TransactionTimeout);
        (await HealthAsync(app)).Status.Should().Be(HealthStatus.Degraded);
        handlerCalls().Should().BeGreaterThan(before, "the batch that could not send its offsets ran first");

        // The hold begins as the commit gives up on the offsets; every mode commits only once its handler calls ended.
        var held = handlerCalls();
        var holdEnds = DateTime.UtcNow + (2 * TransactionTimeout);
        while (DateTime.UtcNow < holdEnds)
        {
            processor.State.Should().Be(ProcessorState.Running, "a retriable coordinator outage never stops the processor");
            handlerCalls().Should().Be(held, "no work is handed out while its offsets could not be committed");
            await Task.Delay(50);
        }

        kafka.ReadTopic("out").Should().HaveCount(30, "nothing of the aborted batch is visible");
        Volatile.Write(ref slow.Value, false);
        kafka.SetGroupCoordinatorUnavailable("copiers", false);
        await ProcessorHarness.Until(() => kafka.ReadTopic("out").Count >= 60 && Committed(kafka) == 60, "the rest is copied once the coordinator answers", seconds: 20);
        await UntilAsync(async () => (await HealthAsync(app)).Status == HealthStatus.Healthy, "health is Healthy again", TimeSpan.FromSeconds(10));
        await app.StopAsync();

        processor.State.Should().Be(ProcessorState.Stopped);
        kafka.ReadTopic("out").Select(r => r.ValueText).Should().HaveCount(60).And.OnlyHaveUniqueItems();
        kafka.TransactionSpans().TimedOut.Should().Be(0, "no transaction outlived its timeout");
    }

    private static async Task<HealthReportEntry> HealthAsync(IHost app) =>
        (await app.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["kafkatx"];

    private static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out waiting until {what}.");
            }

            await Task.Delay(20);
        }
    }

    private static long Committed(InMemoryKafkaCluster kafka) =>
        Enumerable.Range(0, 3).Select(p => kafka.CommittedOffset("copiers", new TopicPartition("in", p)) ?? 0).Sum();

    private static void Seed(InMemoryKafkaCluster kafka, int first, int count)
    {
        var producer = kafka.CreateProducer(new ProducerConfig());
        for (var i = first; i < first + count; i++)
        {
            producer.Produce(new TopicPartition("in", i % 3), new Message<byte[]?, byte[]?> { Key = System.Text.Encoding.UTF8.GetBytes("k" + i), Value = System.Text.Encoding.UTF8.GetBytes("v" + i) });
        }
    }

    private static IHost ProcessorApp(InMemoryKafkaCluster kafka, Mode mode, HandlerScript records, BatchScript batches)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(records).AddSingleton(batches);
        var kafkaTx = builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "in-memory";
                o.TransactionalIdPrefix = "copier";
                o.InstanceId = "0";
                o.TransactionTimeout = TransactionTimeout;
            })
            .UseInMemoryKafka(kafka)
            .AddHealthChecks();
        void Configure(TransactionalProcessorOptions o)
        {
            o.Topics.Add("in");
            o.GroupId = "copiers";
            o.MaxBatchSize = 100;
            o.MaxBatchDuration = TransactionTimeout * 0.45;
            o.MaxConcurrency = mode == Mode.Concurrent ? 4 : 1;
            o.Retry.BaseDelay = TimeSpan.Zero; // no backoff: on the old code a batch ran again at once, every time
            o.StopApplicationOnFailure = false;
        }

        _ = mode == Mode.Batch ? kafkaTx.AddTransactionalProcessor<BatchCopyHandler>(Configure) : kafkaTx.AddTransactionalProcessor<CopyHandler>(Configure);
        return builder.Build();
    }
}
