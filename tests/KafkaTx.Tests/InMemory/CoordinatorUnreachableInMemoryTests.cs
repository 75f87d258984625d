using System.Runtime.CompilerServices;
using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// Issue 19: the group coordinator unreachable. The consumer keeps fetching but no offsets can be committed; the
/// processor must not keep a transaction open past the transaction timeout (Kafka would abort it and fence the
/// producer), must not end fenced or faulted for a retriable outage, and copies every record exactly once when the
/// coordinator is back. Both group protocols.
/// </summary>
public class CoordinatorUnreachableInMemoryTests
{
    private static readonly TimeSpan TransactionTimeout = TimeSpan.FromSeconds(4); // margins of a second: the full suite loads two cores

    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task Through_a_coordinator_outage_of_three_transaction_timeouts_no_transaction_outlives_its_timeout_and_every_record_is_copied_once(GroupProtocol protocol)
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 3);
        Seed(kafka, 0, 30);
        // During the outage each handler takes a fifth of the transaction timeout: a batch is due (MaxBatchDuration) only
        // after about 2.4 s, and sending its offsets, retried for SendOffsetsTimeout (half the timeout), would carry the
        // transaction past the timeout.
        var slow = new StrongBox<bool>();
        var script = new HandlerScript { Await = (_, token) => Volatile.Read(ref slow.Value) ? Task.Delay(TransactionTimeout / 5, token) : Task.CompletedTask };
        using var app = ProcessorApp(kafka, script, protocol);
        await app.StartAsync();
        var processor = app.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        await ProcessorHarness.Until(() => processor.CommittedRecords >= 30, "the first thirty are committed");

        Volatile.Write(ref slow.Value, true);
        kafka.SetGroupCoordinatorUnavailable("copiers", true);
        Seed(kafka, 30, 30);
        await ProcessorHarness.Until(() => script.Seen.Count > 30, "records arrive while the coordinator is unreachable");
        var outageEnds = DateTime.UtcNow + (3 * TransactionTimeout);
        while (DateTime.UtcNow < outageEnds)
        {
            processor.State.Should().Be(ProcessorState.Running, "a retriable coordinator outage never stops the processor");
            await Task.Delay(50);
        }

        kafka.ReadTopic("out").Should().HaveCount(30, "nothing from the batches that could not send their offsets is visible");
        Volatile.Write(ref slow.Value, false);
        kafka.SetGroupCoordinatorUnavailable("copiers", false);
        await ProcessorHarness.Until(() => kafka.ReadTopic("out").Count >= 60 && Committed(kafka) == 60, "the rest is copied once the coordinator answers", seconds: 20);
        await app.StopAsync();

        processor.State.Should().NotBe(ProcessorState.Fenced).And.NotBe(ProcessorState.Faulted);
        kafka.ReadTopic("out").Select(r => r.ValueText).Should().HaveCount(60).And.OnlyHaveUniqueItems();
        var (longest, timedOut) = kafka.TransactionSpans();
        timedOut.Should().Be(0, "the coordinator aborted no transaction for outliving its timeout");
        longest.Should().BeLessThan(TransactionTimeout);
    }

    [Fact]
    public void While_the_coordinator_is_unreachable_the_consumer_fetches_but_offset_commits_fail_with_COORDINATOR_NOT_AVAILABLE()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 3);
        Seed(kafka, 0, 3);
        using var consumer = kafka.CreateConsumer(new ConsumerConfig { GroupId = "copiers", AutoOffsetReset = AutoOffsetReset.Earliest });
        consumer.Subscribe("in");
        var producer = kafka.CreateProducer(new ProducerConfig { TransactionalId = "tx" });
        producer.InitTransactions(TimeSpan.FromSeconds(1));
        kafka.SetGroupCoordinatorUnavailable("copiers", true);

        var record = consumer.Consume(TimeSpan.FromSeconds(1));
        record.Should().NotBeNull("fetching goes on");
        var next = new TopicPartitionOffset(record!.TopicPartition, record.Offset + 1);
        consumer.Invoking(c => c.Commit([next])).Should().Throw<KafkaException>().Which.Error.Code.Should().Be(ErrorCode.GroupCoordinatorNotAvailable);
        producer.BeginTransaction();
        var sent = producer.Invoking(p => p.SendOffsetsToTransaction([next], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(1)))
            .Should().Throw<KafkaRetriableException>().Which;
        sent.Error.Code.Should().Be(ErrorCode.GroupCoordinatorNotAvailable);
        TransactionErrorClassifier.Classify(sent).Should().Be(TransactionErrorKind.Retriable);

        kafka.SetGroupCoordinatorUnavailable("copiers", false);
        producer.SendOffsetsToTransaction([next], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(1));
        producer.CommitTransaction(TimeSpan.FromSeconds(1));
        kafka.CommittedOffset("copiers", next.TopicPartition).Should().Be(next.Offset.Value);
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

    private static IHost ProcessorApp(InMemoryKafkaCluster kafka, HandlerScript script, GroupProtocol protocol)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(script);
        builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "in-memory";
                o.TransactionalIdPrefix = "copier";
                o.InstanceId = "0";
                o.TransactionTimeout = TransactionTimeout;
            })
            .UseInMemoryKafka(kafka)
            .AddTransactionalProcessor<CopyHandler>(o =>
            {
                o.Topics.Add("in");
                o.GroupId = "copiers";
                o.GroupProtocol = protocol;
                o.MaxBatchSize = 100;
                o.MaxBatchDuration = TransactionTimeout * 0.45; // the longest the options allow: below half the timeout
                o.Retry.BaseDelay = TimeSpan.Zero;
                o.StopApplicationOnFailure = false;
            });
        return builder.Build();
    }
}
