using System.Collections.Concurrent;
using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaTx.IntegrationTests.Processing;

/// <summary>Where the copy handler writes, and what it is told to do.</summary>
internal sealed class CopyScript
{
    public required string OutputTopic { get; init; }

    public ConcurrentDictionary<string, int> Handled { get; } = new();

    /// <summary>Throws for a record (by "partition:offset") the first time it is handled, when set.</summary>
    public string? FailOnceAt { get; set; }

    public int Failures;

    /// <summary>
    /// Awaited with the handler's token (by "partition:offset") before the record is copied, as a handler calling a
    /// database or a service does; null: the handler completes synchronously.
    /// </summary>
    public Func<string, CancellationToken, Task>? Await { get; set; }

    /// <summary>Handlers that ended with their token cancelled.</summary>
    public int Cancelled;
}

/// <summary>Copies each input record to the same partition of the output topic, with its origin as the value.</summary>
internal sealed class CopyHandler(CopyScript script) : ITransactionalHandler<string, string>
{
    public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        var origin = $"{record.Partition.Value}:{record.Offset.Value}";
        var count = script.Handled.AddOrUpdate(origin, 1, (_, n) => n + 1);
        if (origin == script.FailOnceAt && count == 1)
        {
            Interlocked.Increment(ref script.Failures);
            throw new InvalidOperationException("injected failure mid-transaction at " + origin);
        }

        if (script.Await is { } wait)
        {
            return AwaitThenCopyAsync(record, origin, transaction, wait, cancellationToken);
        }

        transaction.Produce(new TopicPartition(script.OutputTopic, record.Partition), new Message<string, string> { Key = record.Message.Key, Value = origin });
        return ValueTask.CompletedTask;
    }

    private async ValueTask AwaitThenCopyAsync(ConsumeResult<string, string> record, string origin, ITransactionScope transaction, Func<string, CancellationToken, Task> wait, CancellationToken cancellationToken)
    {
        try
        {
            await wait(origin, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref script.Cancelled);
            throw;
        }

        transaction.Produce(new TopicPartition(script.OutputTopic, record.Partition), new Message<string, string> { Key = record.Message.Key, Value = origin });
    }
}

/// <summary>A generic host running one processor instance, as an application would.</summary>
internal sealed class ProcessorHost : IAsyncDisposable
{
    private readonly IHost _host;

    public ProcessorHost(string bootstrapServers, string instanceId, string inputTopic, string groupId, CopyScript script, Action<TransactionalProcessorOptions>? configure = null, Action<KafkaTransactionsOptions>? producer = null, Conformance.IConformanceBackend? backend = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Debug).AddProvider(Logs);
        builder.Services.AddSingleton(script);
        var kafka = builder.Services
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = bootstrapServers;
                o.TransactionalIdPrefix = "copier-" + groupId;
                o.InstanceId = instanceId;
                producer?.Invoke(o);
            });
        (backend?.Use(kafka) ?? kafka)
            .AddTransactionalProcessor<CopyHandler>(o =>
            {
                o.Topics.Add(inputTopic);
                o.GroupId = groupId;
                o.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
                configure?.Invoke(o);
            });
        _host = builder.Build();
        Processor = _host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
    }

    public CapturingLoggerProvider Logs { get; } = new();

    public ITransactionalProcessor Processor { get; }

    public Task StartAsync() => _host.StartAsync();

    public Task StopAsync() => _host.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }

    public static void Seed(string bootstrapServers, string topic, int partitions, int perPartition) =>
        Seed(new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = bootstrapServers, EnableIdempotence = true }).Build(), topic, partitions, perPartition);

    public static void Seed(IProducer<byte[]?, byte[]?> producer, string topic, int partitions, int perPartition)
    {
        using (producer)
        {
            for (var p = 0; p < partitions; p++)
            {
                for (var i = 0; i < perPartition; i++)
                {
                    producer.Produce(new TopicPartition(topic, p), new Message<byte[]?, byte[]?> { Key = Utf8($"order-{p}-{i}"), Value = Utf8($"{{\"orderId\":\"order-{p}-{i}\"}}") });
                }
            }

            producer.Flush(TimeSpan.FromSeconds(30));
        }
    }

    private static byte[] Utf8(string text) => System.Text.Encoding.UTF8.GetBytes(text);
}
