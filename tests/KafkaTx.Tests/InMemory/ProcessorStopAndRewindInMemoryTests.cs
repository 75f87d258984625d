using Confluent.Kafka;
using KafkaTx.Processing;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// The processor hosted as an application runs it, on the in-memory Kafka: a host stop while a handler awaits with its
/// token, and a rewind with nothing committed under AutoOffsetReset.Latest.
/// </summary>
public class ProcessorStopAndRewindInMemoryTests
{
    [Fact]
    public async Task A_host_stop_while_a_handler_awaits_with_its_token_loses_nothing_and_a_restart_copies_the_rest_in_order()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 1);
        Seed(kafka, 0, 10);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var script = new HandlerScript
        {
            WriteBeforeAwait = true,
            Await = async (value, ct) =>
            {
                if (value == "v5")
                {
                    entered.TrySetResult();
                    // The call is still running when the host begins to stop (the stop reaches the processor right
                    // after ApplicationStopping), however slowly this machine schedules the test's own continuation.
                    await stopping.Task.WaitAsync(ct);
                    await Task.Delay(TimeSpan.FromMilliseconds(200), ct); // a call to a service, honouring the token
                }
            },
        };

        using (var first = App(kafka, script))
        {
            first.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.Register(() => stopping.TrySetResult());
            await first.StartAsync();
            await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
            await first.StopAsync(); // the host's stop token is cancelled while v5's handler awaits
        }

        script.Cancelled.Should().BeEmpty("the handler in flight may finish: its token is cancelled only when ShutdownTimeout runs out");
        kafka.CommittedOffset("copiers", new TopicPartition("in", 0)).Should().Be(6, "v0..v5 were handled; nothing past them");
        Output(kafka).Should().Equal(Expected(0, 6));

        script.Await = (_, ct) => Task.Delay(1, ct);
        using (var second = App(kafka, script, o => o.MaxBatchDuration = TimeSpan.FromMilliseconds(100)))
        {
            await second.StartAsync();
            await ProcessorHarness.Until(() => kafka.CommittedOffset("copiers", new TopicPartition("in", 0)) == 10, "the rest is copied");
            await second.StopAsync();
        }

        Output(kafka).Should().Equal(Expected(0, 10), "every handler's two records, once each, in order");
    }

    [Fact]
    public async Task With_AutoOffsetReset_Latest_an_aborted_first_batch_is_read_again_from_the_first_record_consumed()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 1);
        var assigned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var script = new HandlerScript { Fail = (value, seen) => value == "v0" && seen == 1 };

        using var app = App(kafka, script, o =>
        {
            o.AutoOffsetReset = AutoOffsetReset.Latest;
            o.MaxBatchDuration = TimeSpan.FromMilliseconds(100);
        }, new SignallingFactory(kafka, assigned));
        await app.StartAsync();
        await assigned.Task.WaitAsync(TimeSpan.FromSeconds(10)); // Latest: only records written after the assignment are read
        Seed(kafka, 0, 5);
        await ProcessorHarness.Until(() => kafka.CommittedOffset("copiers", new TopicPartition("in", 0)) == 5, "every record is copied");
        await app.StopAsync();

        script.TimesSeen("v0").Should().Be(2, "the aborted batch was read again");
        kafka.ReadTopic("out").Select(r => r.ValueText).Should().Equal("v0", "v1", "v2", "v3", "v4");
    }

    [Fact]
    public async Task Handlers_whose_scoped_services_block_on_their_own_tasks_do_not_deadlock_the_processor_thread()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("in", 1);
        Seed(kafka, 0, 10);
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddScoped<BlockingResource>();
        builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "in-memory";
                o.TransactionalIdPrefix = "copier";
                o.InstanceId = "0";
            })
            .UseInMemoryKafka(kafka)
            .AddTransactionalProcessor<ResourceHandler>(o =>
            {
                o.Topics.Add("in");
                o.GroupId = "copiers";
                o.MaxBatchSize = 3;
            });
        using var app = builder.Build();

        await app.StartAsync();
        await ProcessorHarness.Until(() => kafka.CommittedOffset("copiers", new TopicPartition("in", 0)) == 10, "every record is copied through several scopes");
        await app.StopAsync();

        kafka.ReadTopic("out").Should().HaveCount(10);
    }

    /// <summary>A scoped service that blocks on its own async work in its constructor and Dispose, as some libraries do.</summary>
    private sealed class BlockingResource : IDisposable
    {
        public BlockingResource() => FlushAsync().GetAwaiter().GetResult();

        public void Dispose() => FlushAsync().GetAwaiter().GetResult();

        private static async Task FlushAsync() => await Task.Delay(1); // no ConfigureAwait(false): captures any context
    }

    private sealed class ResourceHandler(BlockingResource resource) : ITransactionalHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            GC.KeepAlive(resource);
            transaction.Produce("out", new Message<string, string> { Key = record.Message.Key, Value = record.Message.Value });
            return ValueTask.CompletedTask;
        }
    }

    private static IHost App(InMemoryKafkaCluster kafka, HandlerScript script, Action<TransactionalProcessorOptions>? configure = null, IKafkaClientFactory? factory = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(script);
        var kafkaTx = builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "in-memory";
                o.TransactionalIdPrefix = "copier";
                o.InstanceId = "0";
            })
            .UseInMemoryKafka(kafka);
        if (factory is not null)
        {
            kafkaTx.UseClientFactory(factory);
        }

        kafkaTx.AddTransactionalProcessor<CopyHandler>(o =>
        {
            o.Topics.Add("in");
            o.GroupId = "copiers";
            o.MaxBatchSize = 1000;
            o.MaxBatchDuration = TimeSpan.FromSeconds(25); // one open transaction: only the stop ends it
            o.Retry.BaseDelay = TimeSpan.Zero;
            configure?.Invoke(o);
        });
        return builder.Build();
    }

    private static void Seed(InMemoryKafkaCluster kafka, int from, int count)
    {
        var producer = kafka.CreateProducer(new ProducerConfig());
        for (var i = from; i < from + count; i++)
        {
            producer.Produce(new TopicPartition("in", 0), new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = System.Text.Encoding.UTF8.GetBytes("v" + i) });
        }
    }

    private static List<string?> Output(InMemoryKafkaCluster kafka) => [.. kafka.ReadTopic("out").Select(r => r.ValueText)];

    private static string[] Expected(int from, int count) =>
        [.. Enumerable.Range(from, count).SelectMany(i => new[] { $"v{i}-first", $"v{i}" })];

    /// <summary>The in-memory clients, with a signal when the processor's consumer is first given partitions.</summary>
    private sealed class SignallingFactory(InMemoryKafkaCluster kafka, TaskCompletionSource assigned) : IKafkaClientFactory
    {
        public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler) =>
            kafka.CreateProducer(config);

        public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers)
        {
            var onAssigned = handlers.PartitionsAssigned;
            return kafka.CreateConsumer(config, new ConsumerEventHandlers
            {
                PartitionsAssigned = partitions =>
                {
                    onAssigned(partitions);
                    assigned.TrySetResult();
                },
                PartitionsRevoked = handlers.PartitionsRevoked,
                PartitionsLost = handlers.PartitionsLost,
                Error = handlers.Error,
                Log = handlers.Log,
            });
        }
    }
}
