using Confluent.Kafka;
using KafkaTx.Testing.Broker;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// A producer over an <see cref="InMemoryKafkaCluster"/>; its transactions are <see cref="ProducerTransactions"/>'s.
/// Delivery reports are delivered before Produce returns.
/// </summary>
internal sealed class InMemoryProducer : IProducer<byte[]?, byte[]?>, IInMemoryClient
{
    private const int DefaultMaxMessageBytes = 1_000_000;

    // Error's constructor asks librdkafka for the reason text through a native call: build the success value once.
    private static readonly Error Delivered = new(ErrorCode.NoError);
    private readonly InMemoryKafkaCluster _cluster;
    private readonly ProducerTransactions _transactions;
    private readonly ConsistentRandomPartitioner _partitioner = new();
    private readonly int _maxMessageBytes;
    private bool _disposed;
    private bool _crashed;

    public InMemoryProducer(InMemoryKafkaCluster cluster, ProducerConfig config)
    {
        _cluster = cluster;
        _transactions = new ProducerTransactions(cluster, config.TransactionalId, TimeSpan.FromMilliseconds(config.TransactionTimeoutMs ?? 60_000));
        _maxMessageBytes = config.MessageMaxBytes ?? DefaultMaxMessageBytes;
        Name = $"in-memory-producer-{config.TransactionalId ?? "plain"}";
    }

    public Handle Handle => throw new NotSupportedException("An in-memory producer has no librdkafka handle.");

    public string Name { get; }

    // ---------------------------------------------------------------- transactions

    public void InitTransactions(TimeSpan timeout)
    {
        ThrowIfUnusable();
        _transactions.Init();
    }

    public void BeginTransaction()
    {
        ThrowIfUnusable();
        _transactions.Begin();
    }

    public void CommitTransaction(TimeSpan timeout)
    {
        ThrowIfUnusable();
        _transactions.Commit(timeout);
    }

    public void CommitTransaction() => CommitTransaction(TimeSpan.FromMinutes(1));

    public void AbortTransaction(TimeSpan timeout)
    {
        ThrowIfUnusable();
        _transactions.Abort();
    }

    public void AbortTransaction() => AbortTransaction(TimeSpan.FromMinutes(1));

    public void SendOffsetsToTransaction(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(offsets);
        ThrowIfUnusable();
        if (groupMetadata is not InMemoryGroupMetadata group)
        {
            throw new KafkaException(new Error(ErrorCode.Local_InvalidArg, "The consumer group metadata does not come from a consumer of this in-memory cluster"));
        }

        _transactions.SendOffsets(offsets, group);
    }

    // ---------------------------------------------------------------- produce

    public void Produce(string topic, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        Produce(topic, Partition.Any, message, deliveryHandler);
    }

    public void Produce(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null)
    {
        ArgumentNullException.ThrowIfNull(topicPartition);
        Produce(topicPartition.Topic, topicPartition.Partition, message, deliveryHandler);
    }

    public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(string topic, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default) =>
        ProduceAsync(new TopicPartition(topic, Partition.Any), message, cancellationToken);

    public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default)
    {
        DeliveryResult<byte[]?, byte[]?>? result = null;
        Produce(topicPartition, message, report => result = new DeliveryResult<byte[]?, byte[]?> { TopicPartitionOffset = report.TopicPartitionOffset, Message = message, Status = report.Status });
        return Task.FromResult(result!);
    }

    internal static ProduceException<byte[]?, byte[]?> Refused(Error error) => new(error, new DeliveryResult<byte[]?, byte[]?>());

    private void Produce(string topic, Partition requested, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler)
    {
        ArgumentNullException.ThrowIfNull(message);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_crashed)
        {
            throw Refused(Crashes.Error().Error);
        }

        if (_transactions.Fatal is { } fatal)
        {
            throw Refused(fatal.Code == ErrorCode.Local_Fenced ? new Error(ErrorCode.Local_Fenced, "Local: This instance has been fenced by a newer instance") : new Error(fatal.Code, fatal.Reason));
        }

        var size = (message.Key?.Length ?? 0) + (message.Value?.Length ?? 0);
        if (size > _maxMessageBytes)
        {
            throw Refused(new Error(ErrorCode.MsgSizeTooLarge, "Broker: Message size too large"));
        }

        TopicPartitionOffset written;
        lock (_cluster.Sync)
        {
            var transaction = _transactions.IsTransactional ? _transactions.ForProduce() : null;
            var partitions = _cluster.Topics.Partitions(topic);
            var partition = requested == Partition.Any ? _partitioner.Choose(message.Key, partitions.Length) : requested.Value;
            if (partition < 0 || partition >= partitions.Length)
            {
                throw Refused(new Error(ErrorCode.Local_UnknownPartition, "Local: Unknown partition"));
            }

            var log = partitions[partition];
            var offset = log.Append(new LogEntry(message.Key, message.Value, message.Headers, message.Timestamp, transaction, ControlType.None));
            written = new TopicPartitionOffset(log.TopicPartition, offset);
            Monitor.PulseAll(_cluster.Sync);
        }

        deliveryHandler?.Invoke(new DeliveryReport<byte[]?, byte[]?>
        {
            TopicPartitionOffset = written,
            Status = PersistenceStatus.Persisted,
            Error = Delivered,
        });
    }

    // ---------------------------------------------------------------- the rest of IProducer

    public int Poll(TimeSpan timeout) => 0;

    public int Flush(TimeSpan timeout) => 0;

    public void Flush(CancellationToken cancellationToken = default)
    {
    }

    public int AddBrokers(string brokers) => 0;

    public void SetSaslCredentials(string username, string password)
    {
    }

    public void Dispose()
    {
        _disposed = true;
        _cluster.Clients.Closed(this);
    }

    void IInMemoryClient.Crash(long timestamp) => _crashed = true;

    private void ThrowIfUnusable()
    {
        if (_crashed)
        {
            throw Crashes.Error();
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_transactions.Fatal is { } fatal)
        {
            throw new KafkaException(fatal);
        }
    }
}
