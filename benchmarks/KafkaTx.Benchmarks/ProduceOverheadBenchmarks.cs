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
        _services = new ServiceCollection()
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "unused:9092";
                o.TransactionalId = "bench-overhead";
            })
            .UseClientFactory(new NoOpClientFactory())
            .Services.BuildServiceProvider();
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

    private sealed class NoOpClientFactory : IKafkaClientFactory
    {
        public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler) => new NoOpProducer();

        public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers) => throw new NotSupportedException();
    }

    private sealed class NoOpProducer : IProducer<byte[]?, byte[]?>
    {
        public Handle Handle => throw new NotSupportedException();

        public string Name => "no-op";

        public void Produce(string topic, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null)
        {
        }

        public void Produce(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null)
        {
        }

        public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(string topic, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public int Poll(TimeSpan timeout) => 0;

        public int Flush(TimeSpan timeout) => 0;

        public void Flush(CancellationToken cancellationToken = default)
        {
        }

        public void InitTransactions(TimeSpan timeout)
        {
        }

        public void BeginTransaction()
        {
        }

        public void CommitTransaction(TimeSpan timeout)
        {
        }

        public void CommitTransaction()
        {
        }

        public void AbortTransaction(TimeSpan timeout)
        {
        }

        public void AbortTransaction()
        {
        }

        public void SendOffsetsToTransaction(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, TimeSpan timeout)
        {
        }

        public int AddBrokers(string brokers) => 0;

        public void SetSaslCredentials(string username, string password)
        {
        }

        public void Dispose()
        {
        }
    }
}
