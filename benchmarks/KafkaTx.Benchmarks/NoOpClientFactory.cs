using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Benchmarks;

/// <summary>Producers that do nothing: KafkaTx's own cost, with the network taken away.</summary>
internal sealed class NoOpClientFactory : IKafkaClientFactory
{
    /// <summary>A service provider whose default unit of work (with this transactional.id) produces through no-op producers.</summary>
    public static ServiceProvider Services(string transactionalId) =>
        new ServiceCollection()
            .AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "unused:9092";
                o.TransactionalId = transactionalId;
            })
            .UseClientFactory(new NoOpClientFactory())
            .Services.BuildServiceProvider();

    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler) => new NoOpProducer();

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers) => throw new NotSupportedException();
}

internal sealed class NoOpProducer : IProducer<byte[]?, byte[]?>
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
