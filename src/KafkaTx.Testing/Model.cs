using Confluent.Kafka;

namespace KafkaTx.Testing;

internal enum TransactionStatus
{
    Open,
    Committed,
    Aborted,
}

internal enum ControlType
{
    None,
    Commit,
    Abort,
}

/// <summary>One offset of a partition: a record, or a transaction marker (a control record). A struct, stored inline, to keep the garbage collector's work per record small.</summary>
internal readonly struct LogEntry(byte[]? key, byte[]? value, Headers? headers, Timestamp timestamp, TransactionRecord? transaction, ControlType control)
{
    public byte[]? Key { get; } = key;

    public byte[]? Value { get; } = value;

    public Headers? Headers { get; } = headers;

    public Timestamp Timestamp { get; } = timestamp;

    public TransactionRecord? Transaction { get; } = transaction;

    public ControlType Control { get; } = control;

    public InMemoryRecord ToRecord(TopicPartition partition, long offset) => new(partition, offset, Key, Value, Headers, Timestamp);
}

/// <summary>A partition's log, its open transactions, and therefore its last stable offset.</summary>
internal sealed class PartitionLog(TopicPartition partition)
{
    private readonly List<(TransactionRecord Transaction, long FirstOffset)> _open = [];

    /// <summary>The partition this log belongs to (one shared instance, so that producing allocates none).</summary>
    public TopicPartition TopicPartition { get; } = partition;

    // The entries from LogStartOffset on: offset o is at index o - LogStartOffset.
    private readonly List<LogEntry> _entries = [];

    /// <summary>The first offset still held: records before it were deleted (Kafka's DeleteRecords, or retention).</summary>
    public long LogStartOffset { get; private set; }

    public long HighWatermark => LogStartOffset + _entries.Count;

    /// <summary>The entry at <paramref name="offset"/>, which must be between the log start offset and the high watermark.</summary>
    public ref readonly LogEntry Entry(long offset) => ref System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_entries)[(int)(offset - LogStartOffset)];

    /// <summary>Deletes the entries before <paramref name="offset"/> (never past the last stable offset, as Kafka's DeleteRecords).</summary>
    public void DeleteBefore(long offset)
    {
        var upTo = Math.Min(offset, LastStableOffset);
        if (upTo <= LogStartOffset)
        {
            return;
        }

        _entries.RemoveRange(0, (int)(upTo - LogStartOffset));
        LogStartOffset = upTo;
    }

    /// <summary>The first offset of the oldest open transaction, or the high watermark: read_committed readers stop here.</summary>
    public long LastStableOffset
    {
        get
        {
            var lso = HighWatermark;
            foreach (var (_, first) in _open)
            {
                lso = Math.Min(lso, first);
            }

            return lso;
        }
    }

    public long Append(in LogEntry entry)
    {
        var offset = HighWatermark;
        _entries.Add(entry);
        if (entry.Transaction is { } transaction && transaction.Partitions.TryAdd(this, TopicPartition))
        {
            _open.Add((transaction, offset));
        }

        return offset;
    }

    /// <summary>Ends a transaction on this partition: its marker takes the next offset, as in Kafka.</summary>
    public void CloseTransaction(TransactionRecord transaction, bool commit)
    {
        _open.RemoveAll(o => o.Transaction == transaction);
        _entries.Add(new LogEntry(null, null, null, default, transaction, commit ? ControlType.Commit : ControlType.Abort));
    }

    /// <summary>Whether a reader sees the entry at <paramref name="offset"/>; callers read only from <see cref="LogStartOffset"/> to below <see cref="End"/>.</summary>
    public bool IsVisible(long offset, IsolationLevel isolation)
    {
        ref readonly var entry = ref Entry(offset);
        if (entry.Control != ControlType.None)
        {
            return false;
        }

        // Below the last stable offset a transaction is committed or aborted, never open.
        return isolation == IsolationLevel.ReadUncommitted || entry.Transaction is null || entry.Transaction.Status == TransactionStatus.Committed;
    }

    /// <summary>The end a reader with this isolation level may read up to.</summary>
    public long End(IsolationLevel isolation) => isolation == IsolationLevel.ReadUncommitted ? HighWatermark : LastStableOffset;
}

/// <summary>What the coordinator keeps per transactional.id.</summary>
internal sealed class TransactionalIdState(string transactionalId, long producerId)
{
    public string TransactionalId { get; } = transactionalId;

    public long ProducerId { get; } = producerId;

    public int Epoch { get; set; } = -1;

    public TimeSpan TransactionTimeout { get; set; } = TimeSpan.FromMinutes(1);

    public TransactionRecord? Open { get; set; }

    public Queue<ErrorCode> CommitFailures { get; } = new();

    public Queue<ErrorCode> AbortFailures { get; } = new();

    public TimeSpan? CommitDelay { get; set; }

    public long? CommitPendingUntil { get; set; }
}

/// <summary>One transaction: where it wrote, what offsets it carries, and whether it committed.</summary>
internal sealed class TransactionRecord(TransactionalIdState owner, long startedAt)
{
    public TransactionalIdState Owner { get; } = owner;

    public long StartedAt { get; } = startedAt;

    public TransactionStatus Status { get; set; } = TransactionStatus.Open;

    /// <summary>The partitions written, keyed by their log (reference identity, cheap on the produce path).</summary>
    public Dictionary<PartitionLog, TopicPartition> Partitions { get; } = [];

    public Dictionary<string, Dictionary<TopicPartition, long>> Offsets { get; } = new(StringComparer.Ordinal);
}

/// <summary>The consumer group metadata an in-memory consumer hands to SendOffsetsToTransaction.</summary>
internal sealed class InMemoryGroupMetadata(string groupId, int generation, string memberId) : IConsumerGroupMetadata
{
    public string GroupId { get; } = groupId;

    public int Generation { get; } = generation;

    public string MemberId { get; } = memberId;
}

/// <summary>A client of the in-memory cluster, which a simulated process crash stops dead.</summary>
internal interface IInMemoryClient
{
    /// <summary>The process died at <paramref name="timestamp"/>: fail every further call, and leave nothing behind on close.</summary>
    void Crash(long timestamp);
}

internal static class Crashes
{
    public static KafkaException Error() =>
        new(new Error(ErrorCode.Local_Fatal, "The client's process crashed (InMemoryKafkaCluster.CrashClients); it sends nothing more", true));
}
