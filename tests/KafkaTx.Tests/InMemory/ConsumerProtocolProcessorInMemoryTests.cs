using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>A processor with GroupProtocol.Consumer (KIP-848) on the in-memory Kafka, which models the protocol.</summary>
public class ConsumerProtocolProcessorInMemoryTests
{
    [Fact]
    public async Task A_crashed_static_member_restarted_at_once_is_refused_until_its_old_session_expires_then_copies_the_rest_exactly_once()
    {
        // The cluster's clock stands still until the test moves it: the old member's session cannot expire before.
        var clock = new ManualClock();
        var kafka = new InMemoryKafkaCluster(timeProvider: clock);
        kafka.CreateTopic("in", 3);
        Seed(kafka, 0, 30);
        var script = new HandlerScript();
        var dead = ProcessorApp(kafka, script);
        await dead.StartAsync();
        await ProcessorHarness.Until(() => Processor(dead).CommittedRecords >= 30, "the first thirty are committed");

        kafka.CrashClients(); // SIGKILL: no abort, no leaving the group
        Seed(kafka, 30, 30);
        using var restarted = ProcessorApp(kafka, script);
        await restarted.StartAsync();
        await ProcessorHarness.Until(() => kafka.GroupSnapshot("copiers").HeldByDeparted == 3, "the dead member still holds every partition");
        await ProcessorHarness.Until(() => Processor(restarted).State is not (ProcessorState.Created or ProcessorState.Starting), "the restarted instance has initialized and subscribed");
        kafka.ReadTopic("out").Should().HaveCount(30, "the restarted instance is refused (UNRELEASED_INSTANCE_ID) while the old member holds the id");
        Processor(restarted).State.Should().Be(ProcessorState.Running, "a refused join is retried, never fatal");

        clock.Advance(TimeSpan.FromSeconds(45)); // the broker's group.consumer.session.timeout.ms
        await ProcessorHarness.Until(() => kafka.ReadTopic("out").Count >= 60, "the restarted instance joins once the old session expired, and copies the rest", seconds: 20);
        await restarted.StopAsync();
        dead.Dispose();

        kafka.ReadTopic("out").Select(r => r.ValueText).Should().HaveCount(60).And.OnlyHaveUniqueItems();
        Enumerable.Range(0, 3).Select(p => kafka.CommittedOffset("copiers", new TopicPartition("in", p))).Sum().Should().Be(60);
    }

    private static ITransactionalProcessor Processor(IHost host) => host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);

    private static void Seed(InMemoryKafkaCluster kafka, int first, int count)
    {
        var producer = kafka.CreateProducer(new ProducerConfig());
        for (var i = first; i < first + count; i++)
        {
            producer.Produce(new TopicPartition("in", i % 3), new Message<byte[]?, byte[]?> { Key = System.Text.Encoding.UTF8.GetBytes("k" + i), Value = System.Text.Encoding.UTF8.GetBytes("v" + i) });
        }
    }

    private static IHost ProcessorApp(InMemoryKafkaCluster kafka, HandlerScript script)
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
                o.GroupProtocol = GroupProtocol.Consumer;
                o.MaxBatchSize = 5;
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(100);
                o.Retry.BaseDelay = TimeSpan.Zero;
                o.StopApplicationOnFailure = false; // the crashed application's code still runs in the test
            });
        return builder.Build();
    }
}
