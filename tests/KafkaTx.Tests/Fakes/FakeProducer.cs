using Confluent.Kafka;

namespace KafkaTx.Tests.Fakes;

/// <summary>
/// A scriptable stand-in for a transactional Confluent.Kafka producer. It records every call, keeps what a
/// read_committed reader would see (<see cref="Committed"/>), and fails calls on demand.
/// </summary>
internal sealed class FakeProducer : IProducer<byte[]?, byte[]?>
{
    private readonly Lock _lock = new();
    private readonly List<Action> _heldDeliveries = [];
    private readonly List<ProducedRecord> _open = [];
    private Error? _refusedInTransaction;
    private readonly List<string> _running = [];
    private readonly List<string> _overlaps = [];
    private int _queueFullRefusals;

    public List<string> Calls { get; } = [];

    public List<ProducedRecord> Committed { get; } = [];

    public List<ProducedRecord> Aborted { get; } = [];

    public List<IReadOnlyList<TopicPartitionOffset>> CommittedOffsets { get; } = [];

    public Queue<Exception> InitFailures { get; } = new();

    public Queue<Exception> BeginFailures { get; } = new();

    public Queue<Exception> CommitFailures { get; } = new();

    public Queue<Exception> AbortFailures { get; } = new();

    public Queue<Exception> SendOffsetsFailures { get; } = new();

    public Queue<Exception> ProduceFailures { get; } = new();

    /// <summary>Decides the delivery report of each record; null means delivered.</summary>
    public Func<string, int, Error?> DeliveryError { get; set; } = (_, _) => null;

    /// <summary>Decides the delivery report of each record by its content, before <see cref="DeliveryError"/>.</summary>
    public Func<ProducedRecord, Error?> DeliveryErrorFor { get; set; } = _ => null;

    /// <summary>When set, delivery reports wait until <see cref="ReleaseDeliveries"/> (or a commit) sends them.</summary>
    public bool HoldDeliveries { get; set; }

    /// <summary>Runs inside every blocking call with its timeout, for example to advance a clock or block.</summary>
    public Action<string, TimeSpan>? OnBlockingCall { get; set; }

    /// <summary>Every commit call times out while <paramref name="unknown"/> returns true: a coordinator that does not answer.</summary>
    public void CommitsTimeOutWhile(Func<bool> unknown) =>
        OnBlockingCall = (call, _) =>
        {
            if (call == "Commit" && unknown())
            {
                Thread.Sleep(5);
                throw KafkaErrors.TimedOut();
            }
        };

    public bool IsDisposed { get; private set; }

    /// <summary>When it returns true, Produce refuses the record with Local_QueueFull, as a full local queue does.</summary>
    public Func<bool>? QueueFull { get; set; }

    /// <summary>How many records Produce refused because <see cref="QueueFull"/> said the queue was full.</summary>
    public int QueueFullRefusals => Volatile.Read(ref _queueFullRefusals);

    /// <summary>
    /// Calls on this producer that began while a blocking call (Init, Commit, Abort, SendOffsets) was still running,
    /// as "Abort during Commit" or "Dispose during SendOffsets": librdkafka's handle must never see such overlaps.
    /// </summary>
    public List<string> Overlaps
    {
        get
        {
            lock (_lock)
            {
                return [.. _overlaps];
            }
        }
    }

    /// <summary>Receives the offsets of each committed transaction, and sees the commits in its event log.</summary>
    public FakeBroker? Broker { get; set; }

    public int ProducedCount { get; private set; }

    /// <summary>The topic of each record produced with a delivery handler, in order.</summary>
    public List<string> TrackedTopics { get; } = [];

    public Handle Handle => throw new NotSupportedException("The fake has no librdkafka handle.");

    public string Name => "fake-producer";

    public void InitTransactions(TimeSpan timeout)
    {
        Blocking("Init", timeout, InitFailures);
        Broker?.Record("init");
    }

    public void BeginTransaction()
    {
        ThrowIfDisposed();
        Record("Begin");
        if (BeginFailures.TryDequeue(out var failure))
        {
            throw failure;
        }
    }

    public void CommitTransaction(TimeSpan timeout)
    {
        ReleaseDeliveries();
        Blocking("Commit", timeout, CommitFailures);

        // As librdkafka: a refused record, reported or not, leaves the transaction needing an abort, and the commit
        // fails with that record's error.
        Error? refused;
        lock (_lock)
        {
            refused = _refusedInTransaction;
        }

        if (refused is not null)
        {
            throw new KafkaTxnRequiresAbortException(refused);
        }

        List<TopicPartitionOffset> offsets;
        lock (_lock)
        {
            Committed.AddRange(_open);
            _open.Clear();
            offsets = [.. _pendingOffsets];
            _pendingOffsets.Clear();
        }

        Broker?.Record("commit");
        if (offsets.Count > 0)
        {
            Broker?.CommitGroupOffsets(offsets);
        }
    }

    public void CommitTransaction() => CommitTransaction(Timeout.InfiniteTimeSpan);

    public void AbortTransaction(TimeSpan timeout)
    {
        Blocking("Abort", timeout, AbortFailures);
        lock (_lock)
        {
            Aborted.AddRange(_open);
            _open.Clear();
            _pendingOffsets.Clear();
            _refusedInTransaction = null;
        }

        Broker?.Record("abort");
    }

    public void AbortTransaction() => AbortTransaction(Timeout.InfiniteTimeSpan);

    private readonly List<TopicPartitionOffset> _pendingOffsets = [];

    public void SendOffsetsToTransaction(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, TimeSpan timeout)
    {
        Blocking("SendOffsets", timeout, SendOffsetsFailures);
        lock (_lock)
        {
            _pendingOffsets.AddRange(offsets);
            CommittedOffsets.Add([.. offsets]);
        }
    }

    public void Produce(string topic, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null) =>
        Produce(new TopicPartition(topic, Partition.Any), message, deliveryHandler);

    public void Produce(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null)
    {
        ThrowIfDisposed();
        if (QueueFull?.Invoke() == true)
        {
            Interlocked.Increment(ref _queueFullRefusals);
            throw new ProduceException<byte[]?, byte[]?>(new Error(ErrorCode.Local_QueueFull, "Local: Queue full"), new DeliveryResult<byte[]?, byte[]?>());
        }

        Record("Produce:" + topicPartition.Topic);
        if (deliveryHandler is not null)
        {
            lock (_lock)
            {
                TrackedTopics.Add(topicPartition.Topic);
            }
        }

        if (ProduceFailures.TryDequeue(out var failure))
        {
            throw failure;
        }

        // Copy: KafkaTx reuses the message object after Produce returns, exactly as Confluent.Kafka allows.
        var partition = topicPartition.Partition == Partition.Any ? 0 : topicPartition.Partition.Value;
        var record = new ProducedRecord(topicPartition.Topic, partition, message.Key?.ToArray(), message.Value?.ToArray(), message.Headers);
        var error = DeliveryErrorFor(record) ?? DeliveryError(topicPartition.Topic, partition);
        lock (_lock)
        {
            ProducedCount++;
            if (error is null)
            {
                _open.Add(record);
            }
            else
            {
                _refusedInTransaction ??= error;
            }
        }

        var report = new DeliveryReport<byte[]?, byte[]?>
        {
            TopicPartitionOffset = new TopicPartitionOffset(topicPartition.Topic, partition, ProducedCount),
            Error = error ?? new Error(ErrorCode.NoError),
            Status = error is null ? PersistenceStatus.Persisted : PersistenceStatus.NotPersisted,
        };
        if (HoldDeliveries)
        {
            lock (_lock)
            {
                _heldDeliveries.Add(() => deliveryHandler?.Invoke(report));
            }
        }
        else
        {
            deliveryHandler?.Invoke(report);
        }
    }

    public void ReleaseDeliveries()
    {
        List<Action> held;
        lock (_lock)
        {
            held = [.. _heldDeliveries];
            _heldDeliveries.Clear();
        }

        held.ForEach(deliver => deliver());
    }

    public List<ProducedRecord> OpenRecords()
    {
        lock (_lock)
        {
            return [.. _open];
        }
    }

    public int CallCount(string call)
    {
        lock (_lock)
        {
            return Calls.Count(c => c == call);
        }
    }

    public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(string topic, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("KafkaTx must not use ProduceAsync: it awaits each record.");

    public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("KafkaTx must not use ProduceAsync: it awaits each record.");

    public int Poll(TimeSpan timeout) => 0;

    public int Flush(TimeSpan timeout)
    {
        ReleaseDeliveries();
        return 0;
    }

    public void Flush(CancellationToken cancellationToken = default) => ReleaseDeliveries();

    public int AddBrokers(string brokers) => 0;

    public void SetSaslCredentials(string username, string password)
    {
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_running.Count > 0)
            {
                _overlaps.Add("Dispose during " + string.Join(", ", _running));
            }
        }

        IsDisposed = true;
        Record("Dispose");
    }

    private void Blocking(string call, TimeSpan timeout, Queue<Exception> failures)
    {
        ThrowIfDisposed();
        Record(call);
        lock (_lock)
        {
            if (_running.Count > 0)
            {
                _overlaps.Add(call + " during " + string.Join(", ", _running));
            }

            _running.Add(call);
        }

        try
        {
            OnBlockingCall?.Invoke(call, timeout);
            Exception? failure;
            lock (_lock)
            {
                failures.TryDequeue(out failure);
            }

            if (failure is not null)
            {
                throw failure;
            }
        }
        finally
        {
            lock (_lock)
            {
                _running.Remove(call);
            }
        }
    }

    private void Record(string call)
    {
        lock (_lock)
        {
            Calls.Add(call);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);
}

internal sealed record ProducedRecord(string Topic, int Partition, byte[]? Key, byte[]? Value, Headers? Headers)
{
    public string? KeyText => Key is null ? null : System.Text.Encoding.UTF8.GetString(Key);

    public string? ValueText => Value is null ? null : System.Text.Encoding.UTF8.GetString(Value);
}
