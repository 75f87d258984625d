using System.Buffers.Binary;
using System.Text;
using Avro;
using Avro.Generic;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Confluent.Kafka.SyncOverAsync;
using Confluent.SchemaRegistry.Serdes;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Benchmarks;

/// <summary>
/// The produce call inside an open transaction with an asynchronous serializer against a synchronous one (issue 20),
/// KafkaTx's cost alone: the units of work write through producers that do nothing (<see cref="NoOpClientFactory"/>).
/// (a) a synchronous serializer through Produce; (b) the same through ProduceAsync, which must allocate nothing more;
/// (c) an <see cref="IAsyncSerializer{T}"/> that completes at once (a schema already cached) through ProduceAsync;
/// (d) Confluent's AvroSerializer over a registry answering from memory, its schema registered in setup, through
/// ProduceAsync; (e) the same AvroSerializer wrapped with AsSyncOverAsync through Produce.
/// </summary>
[MemoryDiagnoser]
public class AsyncSerializerBenchmarks
{
    private const string Topic = "bench-orders";

    private static readonly RecordSchema OrderSchema = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Order","namespace":"bench","fields":[{"name":"orderId","type":"string"},{"name":"amount","type":"double"}]}""");

    private readonly Message<Null, SyncOrder> _sync = new() { Value = new SyncOrder("order-42", 99.5) };
    private readonly Message<Null, AsyncOrder> _async = new() { Value = new AsyncOrder("order-42", 99.5) };
    private Message<Null, GenericRecord> _avro = null!;
    private ServiceProvider _services = null!;
    private ITransactionalUnitOfWork _unit = null!;
    private ITransactionalUnitOfWork _syncOverAsync = null!;

    [GlobalSetup]
    public void Setup()
    {
        var record = new GenericRecord(OrderSchema);
        record.Add("orderId", "order-42");
        record.Add("amount", 99.5);
        _avro = new Message<Null, GenericRecord> { Value = record };

        var registry = new MinimalSchemaRegistryClient();
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "unused:9092";
                o.TransactionalId = "bench-serializers";
            })
            .UseClientFactory(new NoOpClientFactory())
            .AddSerializer(new SyncOrderSerializer())
            .AddSerializer(new AsyncOrderSerializer())
            .AddSerializer(new AvroSerializer<GenericRecord>(registry));
        services.AddKafkaTransactions("sync-over-async", o =>
            {
                o.BootstrapServers = "unused:9092";
                o.TransactionalId = "bench-serializers-sync-over-async";
            })
            .UseClientFactory(new NoOpClientFactory())
            .AddSerializer(new AvroSerializer<GenericRecord>(registry).AsSyncOverAsync());
        _services = services.BuildServiceProvider();

        _unit = _services.GetRequiredService<ITransactionalUnitOfWork>();
        _unit.InitializeAsync().GetAwaiter().GetResult();
        _unit.BeginTransaction();
        _syncOverAsync = _services.GetRequiredKeyedService<ITransactionalUnitOfWork>("sync-over-async");
        _syncOverAsync.InitializeAsync().GetAwaiter().GetResult();
        _syncOverAsync.BeginTransaction();

        // The first record registers the schema; the benchmark measures the calls after it (schema cached).
        _unit.ProduceAsync(Topic, _avro).AsTask().GetAwaiter().GetResult();
        _syncOverAsync.Produce(Topic, _avro);
        if (registry.Registrations != 1)
        {
            throw new InvalidOperationException($"Expected one schema registration in setup, saw {registry.Registrations}.");
        }
    }

    [Benchmark(Baseline = true, Description = "(a) sync serializer, Produce")]
    public void SyncSerializerProduce() => _unit.Produce(Topic, _sync);

    [Benchmark(Description = "(b) sync serializer, ProduceAsync")]
    public ValueTask SyncSerializerProduceAsync() => _unit.ProduceAsync(Topic, _sync);

    [Benchmark(Description = "(c) async serializer completing at once, ProduceAsync")]
    public ValueTask CompletedAsyncSerializerProduceAsync() => _unit.ProduceAsync(Topic, _async);

    [Benchmark(Description = "(d) AvroSerializer, fake registry, ProduceAsync")]
    public ValueTask AvroSerializerProduceAsync() => _unit.ProduceAsync(Topic, _avro);

    [Benchmark(Description = "(e) AvroSerializer.AsSyncOverAsync(), Produce")]
    public void AvroSyncOverAsyncProduce() => _syncOverAsync.Produce(Topic, _avro);

    [GlobalCleanup]
    public void Cleanup() => _services.Dispose();

    /// <summary>An order written by a synchronous serializer.</summary>
    public sealed record SyncOrder(string OrderId, double Amount);

    /// <summary>The same order, written by an asynchronous serializer.</summary>
    public sealed record AsyncOrder(string OrderId, double Amount);

    private static byte[] Encode(string orderId, double amount)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(orderId) + sizeof(double)];
        var length = Encoding.UTF8.GetBytes(orderId, bytes);
        BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(length), amount);
        return bytes;
    }

    private sealed class SyncOrderSerializer : ISerializer<SyncOrder>
    {
        public byte[] Serialize(SyncOrder data, SerializationContext context) => Encode(data.OrderId, data.Amount);
    }

    /// <summary>Asynchronous in signature, completed at once: a registry serde whose schema is cached.</summary>
    private sealed class AsyncOrderSerializer : IAsyncSerializer<AsyncOrder>
    {
        public Task<byte[]> SerializeAsync(AsyncOrder data, SerializationContext context) => Task.FromResult(Encode(data.OrderId, data.Amount));
    }
}
