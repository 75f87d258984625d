using Confluent.Kafka;

namespace KafkaTx.Testing;

/// <summary>
/// A producer over an <see cref="InMemoryKafkaCluster"/>. Transactional calls fail with the exception types, codes and
/// IsFatal flags Confluent.Kafka 2.16 raises for the same situation (observed against librdkafka).
/// Delivery reports are delivered before Produce returns.
/// </summary>
internal sealed class InMemoryProducer : IProducer<byte[]?, byte[]?>, IInMemoryClient
{
    private const int DefaultMaxMessageBytes = 1_000_000;

    // Error's constructor asks librdkafka for the reason text through a native call: build the success value once.
    private static readonly Error Delivered = new(ErrorCode.NoError);
    private readonly InMemoryKafkaCluster _cluster;
    private readonly string? _transactionalId;
    private readonly TimeSpan _transactionTimeout;
    private readonly int _maxMessageBytes;
    private TransactionalIdState? _state;
    private int _epoch;
    private TransactionRecord? _transaction;
    private Error? _fatal;
    private Error? _abortRequired;
    private int _nextPartition;
    private bool _disposed;
    private bool _crashed;

    public InMemoryProducer(InMemoryKafkaCluster cluster, ProducerConfig config)
    {
        _cluster = cluster;
        _transactionalId = config.TransactionalId;
        _transactionTimeout = TimeSpan.FromMilliseconds(config.TransactionTimeoutMs ?? 60_000);
        _maxMessageBytes = config.MessageMaxBytes ?? DefaultMaxMessageBytes;
        Name = $"in-memory-producer-{_transactionalId ?? "plain"}";
    }

    public Handle Handle => throw new NotSupportedException("An in-memory producer has no librdkafka handle.");

    public string Name { get; }

    // ---------------------------------------------------------------- transactions

    public void InitTransactions(TimeSpan timeout)
    {
        ThrowIfUnusable();
        if (_transactionalId is null)
        {
            throw new KafkaException(new Error(ErrorCode.Local_NotConfigured, "The Transactional API requires transactional.id to be configured"));
        }

        lock (_cluster.Sync)
        {
            (_, _epoch) = _cluster.InitTransactions(_transactionalId, _transactionTimeout);
            _state = _cluster.TransactionalIdFor(_transactionalId);
            _transaction = null;
            _abortRequired = null;
        }
    }

    public void BeginTransaction()
    {
        ThrowIfUnusable();
        lock (_cluster.Sync)
        {
            var state = RequireInitialized();
            ThrowIfFenced(state);
            if (_transaction is { Status: TransactionStatus.Open })
            {
                throw new KafkaException(new Error(ErrorCode.Local_State, "Operation not valid in state InTransaction"));
            }

            _transaction = _cluster.Begin(state);
        }
    }

    public void CommitTransaction(TimeSpan timeout)
    {
        ThrowIfUnusable();
        TimeSpan wait;
        bool waitsOutDelay;
        lock (_cluster.Sync)
        {
            var state = RequireInitialized();
            ThrowIfFenced(state);
            var transaction = RequireTransaction();
            if (state.CommitDelay is { } delay)
            {
                state.CommitDelay = null;
                state.CommitPendingUntil = _cluster.Time.GetTimestamp() + (long)(delay.TotalSeconds * _cluster.Time.TimestampFrequency);
            }

            wait = TimeSpan.Zero;
            waitsOutDelay = false;
            if (state.CommitPendingUntil is { } until)
            {
                var remaining = TimeSpan.FromSeconds((double)(until - _cluster.Time.GetTimestamp()) / _cluster.Time.TimestampFrequency);
                if (remaining > TimeSpan.Zero)
                {
                    waitsOutDelay = remaining <= timeout;
                    wait = waitsOutDelay ? remaining : timeout;
                }
            }

            if (wait == TimeSpan.Zero)
            {
                state.CommitPendingUntil = null;
                CompleteCommit(state, transaction);
                return;
            }
        }

        // A slow coordinator: wait outside the lock, then either finish or time out (and resume on the next call).
        Thread.Sleep(wait);
        lock (_cluster.Sync)
        {
            var state = RequireInitialized();
            if (!waitsOutDelay && state.CommitPendingUntil is { } until && until > _cluster.Time.GetTimestamp())
            {
                throw new KafkaRetriableException(new Error(ErrorCode.Local_TimedOut, "Timed out waiting for operation to finish, retry call to resume"));
            }

            state.CommitPendingUntil = null;
            ThrowIfFenced(state);
            CompleteCommit(state, RequireTransaction());
        }
    }

    public void CommitTransaction() => CommitTransaction(TimeSpan.FromMinutes(1));

    public void AbortTransaction(TimeSpan timeout)
    {
        ThrowIfUnusable();
        lock (_cluster.Sync)
        {
            var state = RequireInitialized();
            ThrowIfFenced(state);
            var transaction = RequireTransaction();
            if (state.AbortFailures.TryDequeue(out var injected))
            {
                // The transaction stays open: only a new producer's InitTransactions (or the timeout) aborts it.
                _fatal = new Error(injected, $"Failed to abort transaction: {injected}", true);
                throw new KafkaException(_fatal);
            }

            _cluster.Complete(transaction, commit: false);
            _transaction = null;
            _abortRequired = null;
            state.CommitPendingUntil = null;
        }
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

        lock (_cluster.Sync)
        {
            ThrowIfFenced(RequireInitialized());
            var transaction = RequireTransaction();
            if (!transaction.Offsets.TryGetValue(group.GroupId, out var pending))
            {
                transaction.Offsets[group.GroupId] = pending = [];
            }

            foreach (var offset in offsets)
            {
                pending[offset.TopicPartition] = offset.Offset.Value;
            }
        }
    }

    private void CompleteCommit(TransactionalIdState state, TransactionRecord transaction)
    {
        if (state.CommitFailures.TryDequeue(out var injected))
        {
            FailCommit(state, transaction, injected);
        }

        if (_abortRequired is { } abortable)
        {
            throw new KafkaTxnRequiresAbortException(abortable);
        }

        _cluster.Complete(transaction, commit: true);
        _transaction = null;
    }

    /// <summary>Raises an injected commit error in the shape librdkafka gives it (see docs/error-handling.md).</summary>
    private void FailCommit(TransactionalIdState state, TransactionRecord transaction, ErrorCode code)
    {
        switch (code)
        {
            case ErrorCode.ProducerFenced or ErrorCode.InvalidProducerEpoch or ErrorCode.Local_Fenced:
                _cluster.Complete(transaction, commit: false);
                state.Epoch++;
                ThrowIfFenced(state);
                break;
            case ErrorCode.InvalidTxnState or ErrorCode.TransactionalIdAuthorizationFailed or ErrorCode.OutOfOrderSequenceNumber or ErrorCode.Local_Fatal:
                _fatal = new Error(code, $"Failed to end transaction: {code}", true);
                throw new KafkaException(_fatal);
            case ErrorCode.ConcurrentTransactions or ErrorCode.NotCoordinatorForGroup or ErrorCode.GroupLoadInProgress or ErrorCode.GroupCoordinatorNotAvailable:
                return; // retried inside librdkafka: the commit succeeds
            case ErrorCode.Local_TimedOut:
                state.CommitPendingUntil = _cluster.Time.GetTimestamp(); // the next call completes it
                throw new KafkaRetriableException(new Error(ErrorCode.Local_TimedOut, "Timed out waiting for operation to finish, retry call to resume"));
            default:
                _abortRequired = new Error(code, $"EndTxn commit failed: {code}");
                break;
        }
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

    private void Produce(string topic, Partition requested, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler)
    {
        ArgumentNullException.ThrowIfNull(message);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_crashed)
        {
            throw Refused(Crashes.Error().Error);
        }

        if (_fatal is { } fatal)
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
            TransactionRecord? transaction = null;
            if (_transactionalId is not null)
            {
                var state = RequireInitialized();
                if (state.Epoch != _epoch)
                {
                    _fatal = new Error(ErrorCode.Local_Fenced, "Local: This instance has been fenced by a newer instance", true);
                    throw Refused(new Error(ErrorCode.Local_Fenced, "Local: This instance has been fenced by a newer instance"));
                }

                transaction = _transaction is { Status: TransactionStatus.Open } open
                    ? open
                    : throw Refused(new Error(ErrorCode.Local_State, "Local: Erroneous state: no transaction is open"));
            }

            var partitions = _cluster.Topic(topic);
            var partition = requested == Partition.Any ? Choose(message.Key, partitions.Length) : requested.Value;
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

    public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(string topic, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default) =>
        ProduceAsync(new TopicPartition(topic, Partition.Any), message, cancellationToken);

    public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default)
    {
        DeliveryResult<byte[]?, byte[]?>? result = null;
        Produce(topicPartition, message, report => result = new DeliveryResult<byte[]?, byte[]?> { TopicPartitionOffset = report.TopicPartitionOffset, Message = message, Status = report.Status });
        return Task.FromResult(result!);
    }

    /// <summary>librdkafka's default partitioner (consistent_random): CRC32 of the key, random for null keys.</summary>
    private int Choose(byte[]? key, int partitionCount) =>
        key is null
            ? (int)((uint)Interlocked.Increment(ref _nextPartition) % (uint)partitionCount)
            : (int)(Crc32.Compute(key) % (uint)partitionCount);

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
        _cluster.Closed(this);
    }

    void IInMemoryClient.Crash(long timestamp) => _crashed = true;

    // ---------------------------------------------------------------- helpers

    private TransactionalIdState RequireInitialized() =>
        _state ?? throw new KafkaException(new Error(ErrorCode.Local_State, "Operation not valid in state Init: call InitTransactions first"));

    private TransactionRecord RequireTransaction() =>
        _transaction is { Status: TransactionStatus.Open } open
            ? open
            : throw new KafkaException(new Error(ErrorCode.Local_State, "Operation not valid in state Ready: no transaction is open"));

    /// <summary>A newer epoch means fenced: by a new instance, by the coordinator's timeout, or by injection.</summary>
    private void ThrowIfFenced(TransactionalIdState state)
    {
        _cluster.ExpireTransactions();
        if (state.Epoch != _epoch)
        {
            _fatal = new Error(ErrorCode.Local_Fenced, "Failed to end transaction: Local: This instance has been fenced by a newer instance", true);
            _transaction = null;
            throw new KafkaException(_fatal);
        }
    }

    private void ThrowIfUnusable()
    {
        if (_crashed)
        {
            throw Crashes.Error();
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_fatal is not null)
        {
            throw new KafkaException(_fatal);
        }
    }

    private static ProduceException<byte[]?, byte[]?> Refused(Error error) => new(error, new DeliveryResult<byte[]?, byte[]?>());
}

/// <summary>CRC-32 (IEEE), as librdkafka's partitioner uses.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = Build();

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return ~crc;
    }

    private static uint[] Build()
    {
        var table = new uint[256];
        for (var n = 0u; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
