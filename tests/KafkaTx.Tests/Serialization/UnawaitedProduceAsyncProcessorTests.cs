using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.Serialization;

/// <summary>
/// A handler that returns without awaiting its ProduceAsync (on the in-memory Kafka): its batch never commits without
/// the record; it is aborted, rewound and run again (charged to the record: the handler's bug), and the record reaches
/// the output exactly once, or, when the handler never awaits, is dead-lettered after Retry.MaxAttempts.
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
        _kafka.ReadTopic("in.DLT", IsolationLevel.ReadUncommitted).Should().BeEmpty("one attempt of three was charged");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task A_handler_that_never_awaits_its_ProduceAsync_gets_its_record_dead_lettered_instead_of_aborting_for_ever(int maxConcurrency)
    {
        var serde = new HeldSerde("copied bad");
        _kafka.CreateTopic("in", 1);
        using (var producer = _kafka.CreateProducer(new ProducerConfig()))
        {
            producer.Produce("in", new Message<byte[]?, byte[]?> { Key = "k1"u8.ToArray(), Value = "bad"u8.ToArray() });
            producer.Produce("in", new Message<byte[]?, byte[]?> { Key = "k2"u8.ToArray(), Value = "good"u8.ToArray() });
        }

        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddKafkaTransactions(o => o.TransactionalId = "copier-0")
            .UseInMemoryKafka(_kafka)
            .AddSerializer<Text>(serde)
            .AddTransactionalProcessor<NeverAwaitsOnBad>(p =>
            {
                p.Topics.Add("in");
                p.GroupId = "copiers";
                p.MaxBatchDuration = TimeSpan.FromMilliseconds(20);
                p.MaxConcurrency = maxConcurrency;
                p.Retry.MaxAttempts = 2;
                p.Retry.BaseDelay = TimeSpan.FromMilliseconds(1);
            });
        using var host = builder.Build();

        try
        {
            await host.StartAsync();
            await ProcessorHarness.Until(() => _kafka.ReadTopic("in.DLT").Count == 1 && _kafka.ReadTopic("out").Count == 1, "the good record copied and the bad one dead-lettered");
            await host.StopAsync();
        }
        finally
        {
            serde.Release();
        }

        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().Equal(["copied good"]);
        var deadLetter = _kafka.ReadTopic("in.DLT").Single();
        deadLetter.ValueText.Should().Be("bad");
        deadLetter.Headers!.TryGetLastBytes(DeadLetterHeaders.ErrorMessage, out var reason).Should().BeTrue();
        System.Text.Encoding.UTF8.GetString(reason).Should().Contain("Await every ProduceAsync");
    }

    /// <summary>Serializes at once, except one value, whose serialization waits until released (a write never awaited in time).</summary>
    private sealed class HeldSerde(string held) : IAsyncSerializer<Text>
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _release.TrySetResult();

        public async Task<byte[]> SerializeAsync(Text data, SerializationContext context)
        {
            await Task.Yield();
            if (data.Value == held)
            {
                await _release.Task.ConfigureAwait(false);
            }

            return System.Text.Encoding.UTF8.GetBytes(data.Value);
        }
    }

    /// <summary>Awaits its ProduceAsync, except for the record "bad", whose write it leaves running.</summary>
    private sealed class NeverAwaitsOnBad : ITransactionalHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            var write = transaction.ProduceAsync("out", new Message<string, Text> { Key = record.Message.Key, Value = new Text($"copied {record.Message.Value}") }, cancellationToken);
            if (record.Message.Value == "bad")
            {
                _ = write.AsTask(); // never awaited
                return ValueTask.CompletedTask;
            }

            return write;
        }
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
