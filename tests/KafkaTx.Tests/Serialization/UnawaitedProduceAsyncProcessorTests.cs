using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.Serialization;

/// <summary>
/// A handler that returns without awaiting its ProduceAsync (on the in-memory Kafka): its batch never commits without
/// the record, even when the write fails after the handler returned and nobody sees the failure; returning early is
/// the handler's failure (charged to the record), so the record reaches the output exactly once, or, when the handler
/// never awaits, is dead-lettered after Retry.MaxAttempts.
/// </summary>
public class UnawaitedProduceAsyncProcessorTests
{
    private readonly InMemoryKafkaCluster _kafka = new();

    [Fact]
    public async Task A_batch_whose_handler_did_not_await_its_ProduceAsync_is_retried_and_the_record_is_written_exactly_once()
    {
        var script = new Script();
        Input(("k", "a"));
        using var host = Copier<ForgetfulCopier>(script.Serde, maxConcurrency: 4, maxAttempts: 3, services: s => s.AddSingleton(script));

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
        Input(("k1", "bad"), ("k2", "good"));
        using var host = Copier<NeverAwaitsOnBad>(serde, maxConcurrency, maxAttempts: 2);

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

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task An_unawaited_ProduceAsync_that_fails_after_its_call_returned_does_not_let_the_batch_commit_without_its_record(int maxConcurrency)
    {
        // The write fails (the registry unreachable) after the handler returned, well before the batch is due: its
        // record must not be committed past without its output, though nobody observes the failure.
        var calls = new Calls();
        Input(("k", "a"));
        using var host = Copier<ForgetsFirstTime>(new FailsOnceSerde("copied a"), maxConcurrency, maxAttempts: 5, services: s => s.AddSingleton(calls), maxBatchDuration: TimeSpan.FromMilliseconds(300));

        await host.StartAsync();
        await ProcessorHarness.Until(() => _kafka.CommittedOffset("copiers", new TopicPartition("in", 0)) == 1 || _kafka.ReadTopic("out").Count >= 1, "a commit past the record, or its copy");
        try
        {
            await ProcessorHarness.Until(() => _kafka.ReadTopic("out").Count >= 1, "the record is copied once the handler awaits", seconds: 5);
        }
        finally
        {
            await host.StopAsync();
        }

        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().Equal(["copied a"], $"a commit past 'a' carries its output (handler calls: {calls.Count})");
    }

    private void Input(params (string Key, string Value)[] records)
    {
        _kafka.CreateTopic("in", 1);
        using var producer = _kafka.CreateProducer(new ProducerConfig());
        foreach (var (key, value) in records)
        {
            producer.Produce("in", new Message<byte[]?, byte[]?> { Key = System.Text.Encoding.UTF8.GetBytes(key), Value = System.Text.Encoding.UTF8.GetBytes(value) });
        }
    }

    private IHost Copier<THandler>(IAsyncSerializer<Text> serializer, int maxConcurrency, int maxAttempts, Action<IServiceCollection>? services = null, TimeSpan? maxBatchDuration = null)
        where THandler : class, ITransactionalHandler<string, string>
    {
        var builder = Host.CreateApplicationBuilder();
        services?.Invoke(builder.Services);
        builder.Services.AddKafkaTransactions(o => o.TransactionalId = "copier-0")
            .UseInMemoryKafka(_kafka)
            .AddSerializer(serializer)
            .AddTransactionalProcessor<THandler>(p =>
            {
                p.Topics.Add("in");
                p.GroupId = "copiers";
                p.MaxBatchDuration = maxBatchDuration ?? TimeSpan.FromMilliseconds(20);
                p.MaxConcurrency = maxConcurrency;
                p.Retry.MaxAttempts = maxAttempts;
                p.Retry.BaseDelay = TimeSpan.FromMilliseconds(1);
            });
        return builder.Build();
    }

    private sealed class Calls
    {
        private int _n;

        public int Count => Volatile.Read(ref _n);

        public int Next() => Interlocked.Increment(ref _n);
    }

    /// <summary>Fails the first serialization of one value as an unreachable registry, a few ms after being called.</summary>
    private sealed class FailsOnceSerde(string value) : IAsyncSerializer<Text>
    {
        private int _failed;

        public async Task<byte[]> SerializeAsync(Text data, SerializationContext context)
        {
            await Task.Delay(10).ConfigureAwait(false);
            if (data.Value == value && Interlocked.Exchange(ref _failed, 1) == 0)
            {
                throw new HttpRequestException("Connection refused (registry:8081)");
            }

            return System.Text.Encoding.UTF8.GetBytes(data.Value);
        }
    }

    /// <summary>Does not await its ProduceAsync the first time; awaits it afterwards.</summary>
    private sealed class ForgetsFirstTime(Calls calls) : ITransactionalHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            var write = transaction.ProduceAsync("out", new Message<string, Text> { Key = record.Message.Key, Value = new Text($"copied {record.Message.Value}") }, cancellationToken);
            if (calls.Next() == 1)
            {
                _ = write.AsTask(); // not awaited
                return ValueTask.CompletedTask;
            }

            return write;
        }
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
