using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.Serialization;

/// <summary>
/// Review of issue 20: a handler returns without awaiting its ProduceAsync, whose serializer then FAILS (registry
/// outage) before the batch commits. The in-flight count returns to zero (EndWrite) and nothing is marked refused, so
/// the batch commits past the record without its output: the record is lost (never copied, never dead-lettered).
/// </summary>
public class UnawaitedFailedProduceAsyncReviewTests
{
    private readonly InMemoryKafkaCluster _kafka = new();

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task An_unawaited_ProduceAsync_that_fails_after_its_call_returned_does_not_let_the_batch_commit_without_its_record(int maxConcurrency)
    {
        var serde = new FailsOnceSerde("copied a");
        var calls = new Calls();
        _kafka.CreateTopic("in", 1);
        using (var producer = _kafka.CreateProducer(new ProducerConfig()))
        {
            producer.Produce("in", new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = "a"u8.ToArray() });
        }

        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(calls);
        builder.Services.AddKafkaTransactions(o => o.TransactionalId = "copier-0")
            .UseInMemoryKafka(_kafka)
            .AddSerializer<Text>(serde)
            .AddTransactionalProcessor<ForgetsFirstTime>(p =>
            {
                p.Topics.Add("in");
                p.GroupId = "copiers";
                p.MaxBatchDuration = TimeSpan.FromMilliseconds(300); // the serializer fails well before the commit
                p.MaxConcurrency = maxConcurrency;
                p.Retry.MaxAttempts = 5;
                p.Retry.BaseDelay = TimeSpan.FromMilliseconds(1);
            });
        using var host = builder.Build();

        await host.StartAsync();
        await ProcessorHarness.Until(() => _kafka.CommittedOffset("copiers", new TopicPartition("in", 0)) == 1 || _kafka.ReadTopic("out").Count >= 1, "a commit past the record, or its copy");
        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().Contain("copied a", "a commit past 'a' carries its output; here the group committed past 'a' without it (handler calls: " + calls.Count + ", out: " + _kafka.ReadTopic("out").Count + ", DLT: " + _kafka.ReadTopic("in.DLT", IsolationLevel.ReadUncommitted).Count + ")");
        try
        {
            await ProcessorHarness.Until(() => _kafka.ReadTopic("out").Count >= 1, "the record is copied once the handler awaits", seconds: 5);
        }
        finally
        {
            await host.StopAsync();
        }

        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().Equal(["copied a"]);
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
}
