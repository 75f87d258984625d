using System.Text;
using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// Concurrent handling on the in-memory Kafka, property style: seeded random handler latencies and failures, a second
/// instance joining and leaving mid-run; whatever happens, the read_committed output is the input once each, and each
/// key's records come out in their input order.
/// </summary>
public class ConcurrentProcessingPropertyTests
{
    private const int Keys = 20;
    private const int RecordsPerKey = 15;
    private const int Partitions = 3;

    [Theory]
    [InlineData(1, ProcessingOrder.Key)]
    [InlineData(2, ProcessingOrder.Key)]
    [InlineData(3, ProcessingOrder.Partition)]
    public async Task Exactly_once_and_in_key_order_with_random_latencies_failures_and_rebalances(int seed, ProcessingOrder order)
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", Partitions);
        kafka.CreateTopic("out", 1);
        var input = Seed(kafka);
        var script = new HandlerScript
        {
            // About one record in ten fails on its first attempt: its whole batch aborts and is redone.
            Fail = (value, seen) => seen == 1 && Draw(seed, value, 10) == 0,
            Await = (value, token) => Task.Delay(Draw(seed, value + "/latency", 4), token), // 0 to 3 ms
        };

        using (var first = App(kafka, script, order, "0"))
        {
            await first.StartAsync();
            await ProcessorHarness.Until(() => Committed(kafka) >= input.Count / 4, "a quarter is committed by the first instance", 60);
            using (var second = App(kafka, script, order, "1"))
            {
                await second.StartAsync(); // the group rebalances: partitions move with work in flight
                await ProcessorHarness.Until(() => Committed(kafka) >= input.Count * 3 / 4, "three quarters are committed by both", 60);
                await second.StopAsync(); // a graceful stop with work in flight; its partitions move back
            }

            await ProcessorHarness.Until(() => Committed(kafka) == input.Count, "everything is committed", 60);
            await first.StopAsync();
        }

        var output = kafka.ReadTopic("out").Select(r => r.ValueText!).ToList();
        output.Should().OnlyHaveUniqueItems("exactly once: no record's output commits twice");
        output.Should().BeEquivalentTo(input, "exactly once: no record is lost");
        foreach (var key in output.GroupBy(v => v.Split(':')[0]))
        {
            key.Select(v => int.Parse(v.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture)).Should().BeInAscendingOrder($"key {key.Key} keeps its order");
        }

        script.Seen.Count.Should().BeGreaterThan(input.Count, "some batches failed and were redone (the seed makes failures)");
    }

    /// <summary>A stable pseudo-random draw in [0, range) per seed and value (string.GetHashCode varies per process).</summary>
    private static int Draw(int seed, string value, int range)
    {
        var hash = (uint)seed * 2654435761u;
        foreach (var c in value)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return (int)(hash % (uint)range);
    }

    private static List<string> Seed(InMemoryKafkaCluster kafka)
    {
        var producer = kafka.CreateProducer(new ProducerConfig());
        var values = new List<string>();
        for (var i = 0; i < RecordsPerKey; i++)
        {
            for (var k = 0; k < Keys; k++)
            {
                var value = $"k{k}:{i}";
                values.Add(value);
                producer.Produce(new TopicPartition("in", k % Partitions), new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes("k" + k), Value = Encoding.UTF8.GetBytes(value) });
            }
        }

        return values;
    }

    private static long Committed(InMemoryKafkaCluster kafka) =>
        Enumerable.Range(0, Partitions).Sum(p => kafka.CommittedOffset("copiers", new TopicPartition("in", p)) ?? 0);

    private static IHost App(InMemoryKafkaCluster kafka, HandlerScript script, ProcessingOrder order, string instanceId)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(script);
        builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "in-memory";
                o.TransactionalIdPrefix = "copier";
                o.InstanceId = instanceId;
            })
            .UseInMemoryKafka(kafka)
            .AddTransactionalProcessor<CopyHandler>(o =>
            {
                o.Topics.Add("in");
                o.GroupId = "copiers";
                o.MaxConcurrency = 8;
                o.Order = order;
                o.MaxBufferedRecords = 40;
                o.MaxBatchSize = 25;
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(50);
                o.Retry.BaseDelay = TimeSpan.Zero;
                o.StaticMembership = false; // a stopped instance leaves at once
            });
        return builder.Build();
    }
}
