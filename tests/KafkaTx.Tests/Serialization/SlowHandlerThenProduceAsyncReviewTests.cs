using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.Serialization;

/// <summary>
/// A handler that alone outlives its transaction (its own slow work), then writes with ProduceAsync through an
/// asynchronous serializer: the write is refused as too late (TooLateToSerialize), so the record is charged like any
/// handler too slow for its transaction and dead-lettered. Had the serializer been given no time instead, its timeout
/// would have looked like a registry outage, which is never charged: the record retried for ever, its partition stuck.
/// </summary>
public class SlowHandlerThenProduceAsyncReviewTests
{
    private readonly InMemoryKafkaCluster _kafka = new();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_handler_slower_than_its_transaction_is_charged_even_when_it_then_writes_through_an_async_serializer(bool batchHandler)
    {
        _kafka.CreateTopic("in", 1);
        using (var producer = _kafka.CreateProducer(new ProducerConfig()))
        {
            producer.Produce("in", new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = "slow"u8.ToArray() });
        }

        var builder = Host.CreateApplicationBuilder();
        var kafka = builder.Services.AddKafkaTransactions(o =>
            {
                o.TransactionalId = "copier-0";
                // Commit margin 2 s: the handler ends inside it (18.5 s), 1.5 s before the broker would time the transaction
                // out and fence the producer (an 8 s timeout, 0.6 s from the broker's, was once too tight on a loaded CI).
                o.TransactionTimeout = TimeSpan.FromSeconds(20);
            })
            .UseInMemoryKafka(_kafka)
            .AddSerializer<Text>(new ScriptedAsyncSerde());
        void Configure(TransactionalProcessorOptions p)
        {
            p.Topics.Add("in");
            p.GroupId = "copiers";
            p.MaxBatchDuration = TimeSpan.FromMilliseconds(20);
            p.Retry.MaxAttempts = 1;
            p.Retry.BaseDelay = TimeSpan.FromMilliseconds(1);
        }

        if (batchHandler)
        {
            kafka.AddTransactionalProcessor<SlowBatchCopier>(Configure);
        }
        else
        {
            kafka.AddTransactionalProcessor<SlowCopier>(Configure);
        }

        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            await ProcessorHarness.Until(() => _kafka.ReadTopic("in.DLT", IsolationLevel.ReadUncommitted).Count > 0, "the record that always outlives its transaction is dead-lettered (Retry.MaxAttempts 1)", seconds: 60);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    private static Message<string, Text> Copy(ConsumeResult<string, string> record) =>
        new() { Key = record.Message.Key, Value = new Text($"copied {record.Message.Value}") };

    private sealed class SlowCopier : ITransactionalHandler<string, string>
    {
        public async ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            await Task.Delay(TimeSpan.FromSeconds(18.5), cancellationToken); // its own work, past TransactionTimeout less its commit margin
            await transaction.ProduceAsync("out", Copy(record), cancellationToken);
        }
    }

    private sealed class SlowBatchCopier : ITransactionalBatchHandler<string, string>
    {
        public async ValueTask HandleAsync(IReadOnlyList<ConsumeResult<string, string>> records, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            await Task.Delay(TimeSpan.FromSeconds(18.5), cancellationToken);
            foreach (var record in records)
            {
                await transaction.ProduceAsync("out", Copy(record), cancellationToken);
            }
        }
    }
}
