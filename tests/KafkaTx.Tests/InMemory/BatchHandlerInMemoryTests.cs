using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// A batch handler hosted as an application runs it, on the in-memory Kafka: poison records spread over several
/// partitions, a rebalance and a second instance meanwhile; the output, read with read_committed, holds every good
/// record exactly once and the dead-letter topic the poison records alone.
/// </summary>
public class BatchHandlerInMemoryTests
{
    private const int Partitions = 3;
    private const int PerPartition = 400;
    private static readonly string[] Poison = ["p0:123", "p2:5", "p2:399"];

    [Fact]
    public async Task Poison_records_among_batches_of_several_partitions_are_dead_lettered_alone_and_every_other_record_commits_exactly_once()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", Partitions);
        var producer = kafka.CreateProducer(new ProducerConfig());
        for (var p = 0; p < Partitions; p++)
        {
            for (var s = 0; s < PerPartition; s++)
            {
                producer.Produce(new TopicPartition("in", p), new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes("p" + p), Value = Encoding.UTF8.GetBytes($"p{p}:{s}") });
            }
        }

        var calls = new ConcurrentQueue<int>();
        using var first = App(kafka, "0", calls);
        await first.StartAsync();
        await ProcessorHarness.Until(() => Committed(kafka) > PerPartition, "a third of the input is committed", 30);
        kafka.ForceRebalance("batchers");
        using var second = App(kafka, "1", calls); // joins: the partitions are shared out again, isolations in progress included
        await second.StartAsync();
        await ProcessorHarness.Until(() => Committed(kafka) == Partitions * PerPartition, "every partition is committed to its end", 60);
        await second.StopAsync();
        await first.StopAsync();

        var output = kafka.ReadTopic("out").Select(r => r.ValueText!).ToList();
        output.Should().OnlyHaveUniqueItems("a good record commits exactly once, however often its batch failed");
        output.Should().HaveCount((Partitions * PerPartition) - Poison.Length).And.NotContain(Poison);
        kafka.ReadTopic("in.DLT").Select(r => r.ValueText).Should().BeEquivalentTo(Poison);
        foreach (var partition in Enumerable.Range(0, Partitions))
        {
            var ofPartition = output.Where(v => v.StartsWith($"p{partition}:", StringComparison.Ordinal)).Select(v => int.Parse(v[3..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            ofPartition.Should().BeInAscendingOrder("a partition's records are written in offset order");
        }

        calls.Count.Should().BeLessThan(Partitions * PerPartition / 10, $"poison records are isolated by halving, not record by record; calls: {string.Join(" ", calls)}");
    }

    private static long Committed(InMemoryKafkaCluster kafka) =>
        Enumerable.Range(0, Partitions).Sum(p => kafka.CommittedOffset("batchers", new TopicPartition("in", p)) ?? 0);

    private static IHost App(InMemoryKafkaCluster kafka, string instance, ConcurrentQueue<int> calls)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(calls);
        builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "in-memory";
                o.TransactionalIdPrefix = "batcher";
                o.InstanceId = instance;
            })
            .UseInMemoryKafka(kafka)
            .AddTransactionalProcessor<PoisonAwareCopy>(o =>
            {
                o.Topics.Add("in");
                o.GroupId = "batchers";
                o.MaxBatchSize = 100;
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(50);
                o.Retry.MaxAttempts = 2;
                o.Retry.BaseDelay = TimeSpan.Zero;
                o.StaticMembership = false;
            });
        return builder.Build();
    }

    /// <summary>Copies the whole batch, then fails it if it holds a poison record: its copies must never commit.</summary>
    private sealed class PoisonAwareCopy(ConcurrentQueue<int> calls) : ITransactionalBatchHandler<string, string>
    {
        public async ValueTask HandleAsync(IReadOnlyList<ConsumeResult<string, string>> records, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            calls.Enqueue(records.Count);
            foreach (var record in records)
            {
                transaction.Produce("out", new Message<string, string> { Key = record.Message.Key, Value = record.Message.Value });
            }

            await Task.Delay(1, cancellationToken); // one call to a service per batch
            var poison = records.FirstOrDefault(r => Poison.Contains(r.Message.Value));
            if (poison is not null)
            {
                throw new InvalidDataException("cannot handle " + poison.Message.Value);
            }
        }
    }
}
