using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Confluent.Kafka;
using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Benchmarks;

/// <summary>
/// The processor copying records on KafkaTx.Testing's in-memory cluster with a handler that does no I/O, at
/// MaxConcurrency 1 and 16 (key order, distinct keys): what the concurrent machinery costs per record when handlers
/// complete at once (issue 17's target: MaxConcurrency 16 at least 0.9 of MaxConcurrency 1). Each invocation copies
/// a freshly seeded topic, from the processor's start to its last record committed. For a CPU profile:
/// <c>dotnet run -c Release --project benchmarks/KafkaTx.Benchmarks -- --filter '*ConcurrentCopy*' --profiler EP</c>.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class ConcurrentCopyBenchmarks
{
    private const int Records = 100_000;
    private const int Keys = 10_000;
    private InMemoryKafkaCluster _cluster = null!;
    private ServiceProvider _services = null!;
    private string _input = null!;

    [Params(1, 16)]
    public int MaxConcurrency { get; set; }

    [IterationSetup]
    public void Setup()
    {
        _cluster = new InMemoryKafkaCluster();
        _input = "in-" + Guid.NewGuid().ToString("N");
        _cluster.CreateTopic(_input, 1);
        _cluster.CreateTopic("out", 1);
        using (var producer = _cluster.CreateProducer(new ProducerConfig()))
        {
            var value = new byte[1024];
            for (var i = 0; i < Records; i++)
            {
                producer.Produce(_input, new Message<byte[]?, byte[]?> { Key = BitConverter.GetBytes(i % Keys), Value = value });
            }

            producer.Flush(TimeSpan.FromSeconds(30));
        }

        _services = new ServiceCollection()
            .AddLogging()
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = _cluster.BootstrapServers;
                o.TransactionalId = "bench-copy";
            })
            .UseInMemoryKafka(_cluster)
            .AddTransactionalProcessor<CopyHandler>(o =>
            {
                o.Topics.Add(_input);
                o.GroupId = "bench-copy";
                o.MaxConcurrency = MaxConcurrency;
                o.StopApplicationOnFailure = false;
            })
            .Services.BuildServiceProvider();
    }

    [IterationCleanup]
    public void Cleanup() => _services.Dispose();

    [Benchmark(OperationsPerInvoke = Records)]
    public async Task Copy()
    {
        var processor = _services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        var hosted = _services.GetServices<IHostedService>().ToList();
        foreach (var service in hosted)
        {
            await service.StartAsync(CancellationToken.None);
        }

        while (processor.CommittedRecords < Records && processor.State is not (ProcessorState.Stopped or ProcessorState.Faulted or ProcessorState.Fenced))
        {
            await Task.Delay(1);
        }

        foreach (var service in hosted)
        {
            await service.StopAsync(CancellationToken.None);
        }

        if (processor.CommittedRecords < Records)
        {
            throw new InvalidOperationException($"The processor ended {processor.State} after {processor.CommittedRecords} records.", processor.Failure);
        }
    }

    /// <summary>Copies each record to the output at once: no I/O.</summary>
    internal sealed class CopyHandler : ITransactionalHandler<byte[], byte[]>
    {
        public ValueTask HandleAsync(ConsumeResult<byte[], byte[]> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            transaction.Produce("out", new Message<byte[], byte[]> { Key = record.Message.Key, Value = record.Message.Value });
            return ValueTask.CompletedTask;
        }
    }
}
