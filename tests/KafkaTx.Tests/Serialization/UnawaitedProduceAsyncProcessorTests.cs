using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.Serialization;

/// <summary>
/// A concurrent handler that returns without awaiting its ProduceAsync (on the in-memory Kafka): its batch never
/// commits without the record; it is aborted, rewound and run again, and the record reaches the output exactly once.
/// </summary>
public class UnawaitedProduceAsyncProcessorTests
{
    private readonly InMemoryKafkaCluster _kafka = new();

    [Fact]
    public async Task A_batch_whose_handler_did_not_await_its_ProduceAsync_is_retried_and_the_record_is_written_exactly_once()
    {
        var script = new Script();
        _kafka.CreateTopic("in", 1);
        using (var producer = _kafka.CreateProducer(new ProducerConfig()))
        {
            producer.Produce("in", new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = "a"u8.ToArray() });
        }

        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(script);
        builder.Services.AddKafkaTransactions(o => o.TransactionalId = "copier-0")
            .UseInMemoryKafka(_kafka)
            .AddSerializer<Text>(script.Serde)
            .AddTransactionalProcessor<ForgetfulCopier>(p =>
            {
                p.Topics.Add("in");
                p.GroupId = "copiers";
                p.MaxBatchDuration = TimeSpan.FromMilliseconds(20);
                p.MaxConcurrency = 4;
                p.Retry.MaxAttempts = 3;
                p.Retry.BaseDelay = TimeSpan.FromMilliseconds(1);
            });
        using var host = builder.Build();

        await host.StartAsync();
        await ProcessorHarness.Until(() => _kafka.ReadTopic("out").Count >= 1, "the record is copied once the handler awaits");
        await host.StopAsync();

        script.Calls.Should().BeGreaterThanOrEqualTo(2, "the batch of the call that did not await was aborted and ran again");
        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().Equal(["copied a"], "exactly once: never committed without it, never twice");
        _kafka.ReadTopic("in.DLT", IsolationLevel.ReadUncommitted).Should().BeEmpty("the record is not at fault");
    }

    private sealed class Script
    {
        private int _calls;

        public ScriptedAsyncSerde Serde { get; } = new() { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };

        public int Calls => Volatile.Read(ref _calls);

        public int Called() => Interlocked.Increment(ref _calls);
    }

    /// <summary>Forgets to await its ProduceAsync the first time (its serializer held meanwhile); awaits it afterwards.</summary>
    private sealed class ForgetfulCopier(Script script) : ITransactionalHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            var write = transaction.ProduceAsync("out", new Message<string, Text> { Key = record.Message.Key, Value = new Text($"copied {record.Message.Value}") }, cancellationToken);
            if (script.Called() == 1)
            {
                _ = write.AsTask(); // not awaited: the call returns while the record is still being serialized
                return ValueTask.CompletedTask;
            }

            script.Serde.Gate!.TrySetResult();
            return write;
        }
    }
}
