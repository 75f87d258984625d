using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Benchmarks;

/// <summary>
/// The hot path: writing a record inside an open transaction. KafkaTx's Produce is compared with Confluent.Kafka's
/// own typed Produce, both transactional, on librdkafka's in-process mock cluster, with the same message object.
/// The target: KafkaTx allocates nothing beyond what Confluent.Kafka allocates, and takes within 5% of its time.
/// Two pairs: with a delivery handler per record (KafkaTx's default, DeliveryTracking.EveryRecord), and without one.
/// </summary>
[MemoryDiagnoser]
public class ProduceInTransactionBenchmarks
{
    private const int RecordsPerIteration = 20_000;
    private readonly Message<string, string> _message = new() { Key = "order-42", Value = """{"orderId":"order-42","amount":99.5}""" };
    private IAdminClient _cluster = null!;
    private ServiceProvider _services = null!;
    private ITransactionalUnitOfWork _unit = null!;
    private ITransactionalUnitOfWork _untracked = null!;
    private IProducer<string, string> _confluent = null!;
    private Action<DeliveryReport<string, string>> _onDelivery = null!;

    [GlobalSetup]
    public void Setup()
    {
        _cluster = new AdminClientBuilder(new AdminClientConfig(new Dictionary<string, string>
        {
            ["bootstrap.servers"] = "embedded:9092",
            ["test.mock.num.brokers"] = "1",
        })).SetLogHandler((_, _) => { }).Build();
        var servers = string.Join(',', _cluster.GetMetadata(TimeSpan.FromSeconds(10)).Brokers.Select(b => $"{b.Host}:{b.Port}"));

        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = servers;
            o.TransactionalId = "bench-kafkatx";
        });
        services.AddKafkaTransactions("untracked", o =>
        {
            o.BootstrapServers = servers;
            o.TransactionalId = "bench-kafkatx-untracked";
            o.DeliveryTracking = DeliveryTracking.None;
        });
        _services = services.BuildServiceProvider();
        _unit = _services.GetRequiredService<ITransactionalUnitOfWork>();
        _unit.InitializeAsync().GetAwaiter().GetResult();
        _untracked = _services.GetRequiredKeyedService<ITransactionalUnitOfWork>("untracked");
        _untracked.InitializeAsync().GetAwaiter().GetResult();

        _confluent = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = servers,
            TransactionalId = "bench-confluent",
            LingerMs = 5,
            DeliveryReportFields = "status",
        }).Build();
        _confluent.InitTransactions(TimeSpan.FromSeconds(30));
        _onDelivery = _ => { };
    }

    [IterationSetup(Target = nameof(KafkaTxProduce))]
    public void BeginKafkaTx() => _unit.BeginTransaction();

    [IterationCleanup(Target = nameof(KafkaTxProduce))]
    public void CommitKafkaTx() => _unit.CommitAsync().GetAwaiter().GetResult();

    [IterationSetup(Target = nameof(KafkaTxProduceUntracked))]
    public void BeginUntracked() => _untracked.BeginTransaction();

    [IterationCleanup(Target = nameof(KafkaTxProduceUntracked))]
    public void CommitUntracked() => _untracked.CommitAsync().GetAwaiter().GetResult();

    [IterationSetup(Targets = [nameof(ConfluentProduce), nameof(ConfluentProduceWithoutHandler)])]
    public void BeginConfluent() => _confluent.BeginTransaction();

    [IterationCleanup(Targets = [nameof(ConfluentProduce), nameof(ConfluentProduceWithoutHandler)])]
    public void CommitConfluent() => _confluent.CommitTransaction(TimeSpan.FromSeconds(30));

    [Benchmark(Baseline = true, OperationsPerInvoke = RecordsPerIteration)]
    public void ConfluentProduce()
    {
        for (var i = 0; i < RecordsPerIteration; i++)
        {
            _confluent.Produce("bench-orders", _message, _onDelivery);
        }
    }

    [Benchmark(OperationsPerInvoke = RecordsPerIteration)]
    public void KafkaTxProduce()
    {
        for (var i = 0; i < RecordsPerIteration; i++)
        {
            _unit.Produce("bench-orders", _message);
        }
    }

    [Benchmark(OperationsPerInvoke = RecordsPerIteration)]
    public void ConfluentProduceWithoutHandler()
    {
        for (var i = 0; i < RecordsPerIteration; i++)
        {
            _confluent.Produce("bench-orders", _message);
        }
    }

    [Benchmark(OperationsPerInvoke = RecordsPerIteration)]
    public void KafkaTxProduceUntracked()
    {
        for (var i = 0; i < RecordsPerIteration; i++)
        {
            _untracked.Produce("bench-orders", _message);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _services.Dispose();
        _confluent.Dispose();
        _cluster.Dispose();
    }
}
