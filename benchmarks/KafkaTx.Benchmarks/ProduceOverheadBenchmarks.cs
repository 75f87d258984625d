using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Benchmarks;

/// <summary>
/// KafkaTx's own cost on the produce path, with the network taken away: the unit of work over a producer that does
/// nothing, against the serialization a Confluent.Kafka typed producer performs for the same record. Equal
/// allocations mean KafkaTx adds none of its own.
/// </summary>
[MemoryDiagnoser]
public class ProduceOverheadBenchmarks
{
    private readonly Message<string, string> _message = new() { Key = "order-42", Value = """{"orderId":"order-42","amount":99.5}""" };
    private ServiceProvider _services = null!;
    private ITransactionalUnitOfWork _unit = null!;

    [GlobalSetup]
    public void Setup()
    {
        _services = NoOpClientFactory.Services("bench-overhead");
        _unit = _services.GetRequiredService<ITransactionalUnitOfWork>();
        _unit.InitializeAsync().GetAwaiter().GetResult();
        _unit.BeginTransaction();
    }

    [Benchmark(Baseline = true)]
    public int ConfluentSerializationOnly()
    {
        // What Confluent.Kafka's Producer<string, string>.Produce does before handing bytes to librdkafka.
        var key = Serializers.Utf8.Serialize(_message.Key, new SerializationContext(MessageComponentType.Key, "bench-orders", _message.Headers));
        var value = Serializers.Utf8.Serialize(_message.Value, new SerializationContext(MessageComponentType.Value, "bench-orders", _message.Headers));
        return key.Length + value.Length;
    }

    [Benchmark]
    public void KafkaTxProduce() => _unit.Produce("bench-orders", _message);

    [GlobalCleanup]
    public void Cleanup() => _services.Dispose();
}
