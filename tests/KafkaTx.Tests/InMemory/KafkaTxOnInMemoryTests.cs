using System.Diagnostics;
using Confluent.Kafka;
using KafkaTx.Telemetry;
using KafkaTx.Testing;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>KafkaTx's unit of work and processor on the in-memory cluster, registered as an application would.</summary>
public class KafkaTxOnInMemoryTests
{
    private static void Producer(KafkaTransactionsOptions o, string instance = "0")
    {
        o.BootstrapServers = "in-memory";
        o.TransactionalIdPrefix = "task-api";
        o.InstanceId = instance;
    }

    [Fact]
    public async Task ExecuteAsync_commits_three_topics_atomically_and_an_aborted_transaction_leaves_nothing_visible()
    {
        var kafka = new InMemoryKafkaCluster();
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o => Producer(o)).UseInMemoryKafka(kafka);
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        await unit.ExecuteAsync((tx, _) =>
        {
            tx.Produce("task-events", new Message<string, string> { Key = "task-1", Value = "created" });
            tx.Produce("audit-log", new Message<string, string> { Key = "task-1", Value = "task_created" });
            tx.Produce("notification-queue", new Message<string, string> { Key = "user-1", Value = "task_assigned" });
            return ValueTask.CompletedTask;
        });
        await unit.Awaiting(u => u.ExecuteAsync((tx, _) =>
        {
            tx.Produce("task-events", new Message<string, string> { Key = "task-2", Value = "created" });
            throw new InvalidOperationException("crash before the notification");
        })).Should().ThrowAsync<InvalidOperationException>();

        kafka.ReadTopic("task-events").Select(r => r.KeyText).Should().Equal("task-1");
        kafka.ReadTopic("audit-log").Should().ContainSingle();
        kafka.ReadTopic("notification-queue").Should().ContainSingle();
        kafka.ReadTopic("task-events", IsolationLevel.ReadUncommitted).Select(r => r.KeyText).Should().Equal("task-1", "task-2");
    }

    [Fact]
    public async Task A_second_instance_with_the_same_transactional_id_fences_the_first_unit()
    {
        var kafka = new InMemoryKafkaCluster();
        var first = new ServiceCollection();
        first.AddKafkaTransactions(o => Producer(o)).UseInMemoryKafka(kafka);
        await using var one = first.BuildServiceProvider();
        var zombie = one.GetRequiredService<ITransactionalUnitOfWork>();
        await zombie.InitializeAsync();
        var second = new ServiceCollection();
        second.AddKafkaTransactions(o => Producer(o)).UseInMemoryKafka(kafka);
        await using var two = second.BuildServiceProvider();
        await two.GetRequiredService<ITransactionalUnitOfWork>().InitializeAsync();

        var failure = await zombie.Awaiting(u => u.ExecuteAsync((tx, _) =>
        {
            tx.Produce("t", new Message<string, string> { Key = "k", Value = "zombie" });
            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        zombie.State.Should().Be(TransactionState.Fenced);
        kafka.ReadTopic("t").Should().BeEmpty();
    }

    [Fact]
    public async Task The_processor_copies_exactly_once_through_an_abort_and_a_restart()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 3);
        Seed(kafka, 0, 30);
        var script = new HandlerScript { Fail = (value, seen) => value == "v7" && seen == 1 };

        using (var first = ProcessorApp(kafka, script, "0"))
        {
            await first.StartAsync();
            var processor = first.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
            await ProcessorHarness.Until(() => processor.CommittedRecords >= 30, "the first thirty are committed");
            await first.StopAsync();
        }

        Seed(kafka, 30, 30);
        using (var second = ProcessorApp(kafka, script, "0"))
        {
            await second.StartAsync();
            var processor = second.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
            await ProcessorHarness.Until(() => processor.CommittedRecords >= 30, "the next thirty are committed");
            await second.StopAsync();
        }

        var output = kafka.ReadTopic("out").Select(r => r.ValueText).ToList();
        output.Should().HaveCount(60).And.OnlyHaveUniqueItems();
        Enumerable.Range(0, 3).Select(p => kafka.CommittedOffset("copiers", new TopicPartition("in", p))).Sum().Should().Be(60);
    }

    [Fact]
    public async Task One_trace_follows_a_request_through_its_transaction_and_the_processor_to_every_output_record()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 3);
        var front = new ServiceCollection();
        front.AddKafkaTransactions(o =>
        {
            Producer(o);
            o.TransactionalIdPrefix = "front";
        }).UseInMemoryKafka(kafka);
        await using var frontServices = front.BuildServiceProvider();
        using var copier = ProcessorApp(kafka, new HandlerScript(), "0");
        using var spans = new ActivityRecorder(
            frontServices.GetRequiredService<KafkaTxInstrumentation>().ActivitySource,
            copier.Services.GetRequiredService<KafkaTxInstrumentation>().ActivitySource);

        var request = new Activity("POST /orders").SetIdFormat(ActivityIdFormat.W3C).Start();
        await frontServices.GetRequiredService<ITransactionalUnitOfWork>().ExecuteAsync((tx, _) =>
        {
            for (var partition = 0; partition < 3; partition++)
            {
                tx.Produce(new TopicPartition("in", partition), new Message<string, string> { Key = "order-" + partition, Value = "v" + partition });
            }

            return ValueTask.CompletedTask;
        });
        request.Stop();
        await copier.StartAsync();
        await ProcessorHarness.Until(() => kafka.ReadTopic("out").Count == 3, "the three orders are copied");
        await copier.StopAsync();

        var outputTraces = kafka.ReadTopic("out").Select(r => TraceContextHeaders.TryExtract(r.Headers, out var context) ? context.TraceId : default).ToList();
        outputTraces.Should().HaveCount(3).And.AllBeEquivalentTo(request.TraceId);
        var frontTransaction = spans.Stopped("kafkatx.transaction").Single(s => s.ParentSpanId == request.SpanId);
        spans.Stopped("kafkatx.process").Should().HaveCount(3)
            .And.OnlyContain(s => s.TraceId == request.TraceId && s.ParentSpanId == frontTransaction.SpanId);
    }

    [Fact]
    public async Task Two_processors_stay_exactly_once_through_a_rebalance_in_mid_transaction()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 6);
        Seed(kafka, 0, 600);
        var script = new HandlerScript();
        using var one = ProcessorApp(kafka, script, "0", batch: 1000);
        await one.StartAsync();
        await ProcessorHarness.Until(() => script.Seen.Count >= 100, "the first instance is in mid-transaction");

        using var two = ProcessorApp(kafka, script, "1", batch: 1000);
        await two.StartAsync();
        kafka.ForceRebalance("copiers");
        await ProcessorHarness.Until(() => kafka.ReadTopic("out").Count == 600, "every record is copied", seconds: 20);
        await one.StopAsync();
        await two.StopAsync();

        kafka.ReadTopic("out").Select(r => r.ValueText).Should().HaveCount(600).And.OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task A_crashed_processor_restarted_at_once_takes_its_partitions_back_as_a_static_member_without_waiting_for_its_session()
    {
        // The cluster's clock stands still: a session timeout can never pass, so only static membership can hand the
        // dead instance's partitions to its next incarnation.
        var clock = new ManualClock();
        var kafka = new InMemoryKafkaCluster(timeProvider: clock);
        kafka.CreateTopic("in", 3);
        Seed(kafka, 0, 30);
        var script = new HandlerScript();
        var dead = ProcessorApp(kafka, script, "0", batch: 1000, configure: DiesQuietly);
        await dead.StartAsync();
        await ProcessorHarness.Until(() => Processor(dead).CommittedRecords >= 30, "the first thirty are committed");
        Seed(kafka, 30, 30);
        await ProcessorHarness.Until(() => script.Seen.Count > 30, "the next records are being handled");

        kafka.CrashClients(); // SIGKILL: no abort, no LeaveGroup
        using var restarted = ProcessorApp(kafka, script, "0", batch: 1000);
        await restarted.StartAsync();
        Seed(kafka, 60, 30); // work for the new incarnation, however much of the rest the dead one had copied
        await ProcessorHarness.Until(() => kafka.ReadTopic("out").Count >= 90 && Processor(restarted).CommittedRecords > 0, "the restarted instance copies the rest", seconds: 20);
        kafka.GroupSnapshot("copiers").Should().Be((1, 0), "the new incarnation took the dead one's place, and its partitions");
        await restarted.StopAsync();
        dead.Dispose();

        kafka.ReadTopic("out").Select(r => r.ValueText).Should().HaveCount(90).And.OnlyHaveUniqueItems();
        Enumerable.Range(0, 3).Select(p => kafka.CommittedOffset("copiers", new TopicPartition("in", p))).Sum().Should().Be(90);
    }

    [Fact]
    public async Task Without_static_membership_a_restarted_processor_waits_for_the_dead_members_session_to_time_out()
    {
        var clock = new ManualClock();
        var kafka = new InMemoryKafkaCluster(timeProvider: clock);
        kafka.CreateTopic("in", 3);
        Seed(kafka, 0, 30);
        var script = new HandlerScript();
        void Dynamic(TransactionalProcessorOptions o) => o.StaticMembership = false;
        var dead = ProcessorApp(kafka, script, "0", batch: 1000, configure: o =>
        {
            Dynamic(o);
            DiesQuietly(o);
        });
        await dead.StartAsync();
        await ProcessorHarness.Until(() => Processor(dead).CommittedRecords >= 30, "the first thirty are committed");

        kafka.CrashClients();
        Seed(kafka, 30, 30);
        using var restarted = ProcessorApp(kafka, script, "0", batch: 1000, configure: Dynamic);
        await restarted.StartAsync();
        await ProcessorHarness.Until(() => kafka.GroupSnapshot("copiers").Members == 2, "the restarted instance joins as a new member");

        kafka.GroupSnapshot("copiers").HeldByDeparted.Should().Be(3, "the dead member keeps every partition until its session times out");
        kafka.ReadTopic("out").Should().HaveCount(30);

        clock.Advance(TimeSpan.FromSeconds(45)); // session.timeout.ms's default
        await ProcessorHarness.Until(() => kafka.ReadTopic("out").Count >= 60, "the partitions move once the session has timed out", seconds: 20);
        await restarted.StopAsync();
        dead.Dispose();

        kafka.ReadTopic("out").Select(r => r.ValueText).Should().HaveCount(60).And.OnlyHaveUniqueItems();
    }

    /// <summary>The crashed application's code still runs in the test; it must not stop the test host or set its exit code.</summary>
    private static void DiesQuietly(TransactionalProcessorOptions options) => options.StopApplicationOnFailure = false;

    private static ITransactionalProcessor Processor(IHost host) => host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);

    private static void Seed(InMemoryKafkaCluster kafka, int first, int count)
    {
        var producer = kafka.CreateProducer(new ProducerConfig());
        for (var i = first; i < first + count; i++)
        {
            producer.Produce(new TopicPartition("in", i % 3), new Message<byte[]?, byte[]?> { Key = System.Text.Encoding.UTF8.GetBytes("k" + i), Value = System.Text.Encoding.UTF8.GetBytes("v" + i) });
        }
    }

    private static IHost ProcessorApp(InMemoryKafkaCluster kafka, HandlerScript script, string instance, int batch = 5, Action<TransactionalProcessorOptions>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(script);
        builder.Services
            .AddKafkaTransactions(o =>
            {
                Producer(o, instance);
                o.TransactionalIdPrefix = "copier";
            })
            .UseInMemoryKafka(kafka)
            .AddTransactionalProcessor<CopyHandler>(o =>
            {
                o.Topics.Add("in");
                o.GroupId = "copiers";
                o.MaxBatchSize = batch;
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(200);
                o.Retry.BaseDelay = TimeSpan.Zero;
                configure?.Invoke(o);
            });
        return builder.Build();
    }
}

public class UseInMemoryKafkaTests
{
    [Fact]
    public async Task Without_arguments_it_registers_one_cluster_to_inspect_and_needs_no_bootstrap_servers()
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.TransactionalIdPrefix = "handler-test";
            o.InstanceId = "0";
        }).UseInMemoryKafka();
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        await unit.ExecuteAsync((tx, _) =>
        {
            tx.Produce("out", new Message<string, string> { Key = "k", Value = "v" });
            return ValueTask.CompletedTask;
        });

        provider.GetRequiredService<InMemoryKafkaCluster>().ReadTopic("out").Single().ValueText.Should().Be("v");
    }
}
