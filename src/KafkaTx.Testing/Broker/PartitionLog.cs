using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>A partition's log, its open transactions, and therefore its last stable offset. Every member runs under the cluster's lock.</summary>
internal sealed class PartitionLog(TopicPartition partition)
{
    // The entries from LogStartOffset on: offset o is at index o - LogStartOffset.
    private readonly List<LogEntry> _entries = [];
    private readonly List<(TransactionRecord Transaction, long FirstOffset)> _open = [];

    /// <summary>The partition this log belongs to (one shared instance, so that producing allocates none).</summary>
    public TopicPartition TopicPartition { get; } = partition;

    /// <summary>The first offset still held: records before it were deleted (Kafka's DeleteRecords, or retention).</summary>
    public long LogStartOffset { get; private set; }

    public long HighWatermark => LogStartOffset + _entries.Count;

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

    /// <summary>The entry at <paramref name="offset"/>, which must be between the log start offset and the high watermark.</summary>
    public ref readonly LogEntry Entry(long offset) => ref CollectionsMarshal.AsSpan(_entries)[(int)(offset - LogStartOffset)];

    public long Append(in LogEntry entry)
    {
        var offset = HighWatermark;
        _entries.Add(entry);
        if (entry.Transaction is { } transaction && transaction.AddPartition(this))
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

    /// <summary>Every record a reader with the isolation level sees, in offset order, each naming <paramref name="partition"/>.</summary>
    public List<InMemoryRecord> Read(TopicPartition partition, IsolationLevel isolation)
    {
        var records = new List<InMemoryRecord>();
        var end = End(isolation);
        for (var offset = LogStartOffset; offset < end; offset++)
        {
            if (IsVisible(offset, isolation))
            {
                records.Add(Entry(offset).ToRecord(partition, offset));
            }
        }

        return records;
    }

    /// <summary>The end a reader with this isolation level may read up to.</summary>
    public long End(IsolationLevel isolation) => isolation == IsolationLevel.ReadUncommitted ? HighWatermark : LastStableOffset;
}
