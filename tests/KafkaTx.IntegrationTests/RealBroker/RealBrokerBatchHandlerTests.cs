using System.Collections.Concurrent;
using System.Globalization;
using Confluent.Kafka;
using KafkaTx.IntegrationTests.Processing;
using KafkaTx.IntegrationTests.Support;
using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// The batch handler (<see cref="ITransactionalBatchHandler{TKey, TValue}"/>) on a real broker: poison records found by
/// halving and dead-lettered alone while a second instance joins, and the crash harness with <c>--batch-handler</c>.
/// Outcomes only, read back with read_committed: no timing is asserted.
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerBatchHandlerTests(KafkaBrokerFixture broker, ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);

    [SkippableFact]
    public async Task RealBroker_poison_records_are_dead_lettered_alone_and_every_other_record_commits_once_through_a_rebalance()
    {
        const int Partitions = 3;
        const int PerPartition = 500;
        var servers = broker.RequireBroker();
        var topics = await broker.CreateTopicsAsync(Partitions, "batch-in", "batch-out", "batch-dlt");
        var (input, outputTopic, deadLetters) = (topics[0], topics[1], topics[2]);
        var group = "batchers-" + Guid.NewGuid().ToString("N");
        ProcessorHost.Seed(servers, input, Partitions, PerPartition);
        var poison = new HashSet<string> { "0:137", "2:0", "2:499" }; // partition:offset: one mid-stream, one first, one last
        var calls = new ConcurrentQueue<int>();
        var script = new BatchScript(outputTopic, poison, calls);

        using var one = Host(servers, "0", input, group, deadLetters, script);
        await one.StartAsync();
        var first = one.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        await Eventually.Until(() => first.CommittedRecords >= PerPartition / 2, Deadline, "the first instance commits some batches");
        using var two = Host(servers, "1", input, group, deadLetters, script); // joins: the partitions are shared out again
        await two.StartAsync();
        await Eventually.Until(() => GroupAtEnd(servers, group, input, Partitions, PerPartition), Deadline, "every partition is committed to its end");
        await two.StopAsync();
        await one.StopAsync();

        var visible = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, outputTopic);
        visible.Select(r => r.Value).Should().OnlyHaveUniqueItems("a good record commits exactly once, however often its batch failed")
            .And.HaveCount((Partitions * PerPartition) - poison.Count).And.NotContain(poison);
        foreach (var partition in visible.GroupBy(r => r.Partition))
        {
            partition.OrderBy(r => r.Offset).Select(r => long.Parse(r.Value!.Split(':')[1], CultureInfo.InvariantCulture)).Should().BeInAscendingOrder("per-partition order is kept");
        }

        var deadLettered = TopicReader.ReadAll(servers, IsolationLevel.ReadCommitted, Deadline, deadLetters);
        deadLettered.Select(r => $"{Text(r.Headers, DeadLetterHeaders.Partition)}:{Text(r.Headers, DeadLetterHeaders.Offset)}").Should().BeEquivalentTo(poison);
        output.WriteLine($"{calls.Count} handler calls for {Partitions * PerPartition} records: {string.Join(" ", calls)}");
    }

    [SkippableFact]
    public async Task RealBroker_copying_with_a_batch_handler_through_three_kills_and_a_paused_zombie_is_exactly_once_and_ordered()
    {
        var servers = broker.RequireBroker();
        await using var backend = new BrokerCopierBackend(servers);
        var log = new StringWriter();
        var options = new CrashOptions
        {
            Records = 20_000,
            Partitions = 3,
            Kills = 3,
            Seed = 2026,
            Handler = HandlerShape.Await,
            HandlerDelay = TimeSpan.FromMilliseconds(1),
            Concurrency = new CopyConcurrency(BatchHandler: true),
            Deadline = TimeSpan.FromMinutes(3),
        };

        var report = await new CrashHarness(backend, options, log).RunAsync();

        report.Print(log);
        output.WriteLine(log.ToString());
        report.KilledAt.Should().HaveCount(3, log.ToString());
        report.Zombie.Should().NotBeNull();
        report.Zombie!.State.Should().Be("Fenced", log.ToString());
        report.Duplicates.Should().Be(0, log.ToString());
        report.Losses.Should().Be(0, log.ToString());
        report.PartitionsOutOfOrder.Should().Be(0, log.ToString());
        report.PartitionsFullyCommitted.Should().Be(3);
        report.ExactlyOnce.Should().BeTrue(log.ToString());
    }

    private static IHost Host(string servers, string instance, string input, string group, string deadLetters, BatchScript script)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(script);
        builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = servers;
                o.TransactionalIdPrefix = "batcher-" + group;
                o.InstanceId = instance;
            })
            .AddTransactionalProcessor<PoisonAwareBatchCopy>(o =>
            {
                o.Topics.Add(input);
                o.GroupId = group;
                o.MaxBatchSize = 200;
                o.DeadLetterTopic = deadLetters;
                o.Retry.MaxAttempts = 2;
                o.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
                o.ConsumerSettings["heartbeat.interval.ms"] = "500";
            });
        return builder.Build();
    }

    private static bool GroupAtEnd(string servers, string group, string topic, int partitions, int perPartition)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = servers, GroupId = group }).Build();
        var committed = consumer.Committed(Enumerable.Range(0, partitions).Select(p => new TopicPartition(topic, p)), TimeSpan.FromSeconds(10));
        return committed.All(c => c.Offset.Value == perPartition);
    }

    private static string Text(Headers? headers, string key) => System.Text.Encoding.UTF8.GetString(headers!.GetLastBytes(key));

    /// <summary>Where the batch handler writes, which records (partition:offset) it cannot handle, and the size of each call.</summary>
    internal sealed record BatchScript(string Output, IReadOnlySet<string> Poison, ConcurrentQueue<int> Calls);

    /// <summary>Copies the whole batch (the origin as the value), then fails it if it holds a poison record.</summary>
    internal sealed class PoisonAwareBatchCopy(BatchScript script) : ITransactionalBatchHandler<string, string>
    {
        public ValueTask HandleAsync(IReadOnlyList<ConsumeResult<string, string>> records, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            script.Calls.Enqueue(records.Count);
            foreach (var record in records)
            {
                var origin = $"{record.Partition.Value}:{record.Offset.Value}";
                transaction.Produce(new TopicPartition(script.Output, record.Partition), new Message<string, string> { Key = record.Message.Key, Value = origin });
                if (script.Poison.Contains(origin))
                {
                    throw new InvalidDataException("cannot handle " + origin);
                }
            }

            return ValueTask.CompletedTask;
        }
    }
}
