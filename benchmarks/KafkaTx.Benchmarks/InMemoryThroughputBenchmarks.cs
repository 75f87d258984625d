using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Benchmarks;

/// <summary>
/// Records produced inside transactions per second on KafkaTx.Testing's in-memory cluster. Target: at least
/// 1,000,000 records per second on the 2-core development machine, both through the raw producer and through
/// KafkaTx's unit of work (ExecuteAsync with 1,000 records per transaction).
/// </summary>
[MemoryDiagnoser]
public class InMemoryThroughputBenchmarks
{
    private const int RecordsPerTransaction = 1_000;
    private const int Transactions = 100;
    private readonly Message<byte[]?, byte[]?> _raw = new() { Key = "order-42"u8.ToArray(), Value = """{"orderId":"order-42","amount":99.5}"""u8.ToArray() };
    private readonly Message<string, string> _typed = new() { Key = "order-42", Value = """{"orderId":"order-42","amount":99.5}""" };
    private InMemoryKafkaCluster _cluster = null!;
    private IProducer<byte[]?, byte[]?> _producer = null!;
    private ServiceProvider _services = null!;
    private ITransactionalUnitOfWork _unit = null!;

    [IterationSetup]
    public void Setup()
    {
        // A fresh cluster per iteration, so that logs do not grow across iterations.
        _cluster = new InMemoryKafkaCluster(defaultPartitions: 6);
        _producer = _cluster.CreateProducer(new ProducerConfig { TransactionalId = "bench-raw" });
        _producer.InitTransactions(TimeSpan.FromSeconds(1));
        _services = new ServiceCollection()
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = _cluster.BootstrapServers;
                o.TransactionalId = "bench-unit";
            })
            .UseInMemoryKafka(_cluster)
            .Services.BuildServiceProvider();
        _unit = _services.GetRequiredService<ITransactionalUnitOfWork>();
        _unit.InitializeAsync().GetAwaiter().GetResult();
    }

    [IterationCleanup]
    public void Cleanup() => _services.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = RecordsPerTransaction * Transactions)]
    public void RawProducerInTransactions()
    {
        for (var t = 0; t < Transactions; t++)
        {
            _producer.BeginTransaction();
            for (var i = 0; i < RecordsPerTransaction; i++)
            {
                _producer.Produce("orders", _raw);
            }

            _producer.CommitTransaction(TimeSpan.FromSeconds(1));
        }
    }

    [Benchmark(OperationsPerInvoke = RecordsPerTransaction * Transactions)]
    public async Task UnitOfWorkExecuteAsync()
    {
        for (var t = 0; t < Transactions; t++)
        {
            await _unit.ExecuteAsync((tx, _) =>
            {
                for (var i = 0; i < RecordsPerTransaction; i++)
                {
                    tx.Produce("orders", _typed);
                }

                return ValueTask.CompletedTask;
            });
        }
    }
}
