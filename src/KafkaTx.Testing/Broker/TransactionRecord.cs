using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>
/// One transaction, as the coordinator records it: the partitions it wrote to, the offsets sent to it, and how it
/// ended. Every member runs under the cluster's lock.
/// </summary>
internal sealed class TransactionRecord(TransactionalIdState owner, long startedAt)
{
    // Keyed by the log itself (reference identity): cheap on the produce path.
    private readonly HashSet<PartitionLog> _partitions = [];
    private readonly Dictionary<string, Dictionary<TopicPartition, long>> _offsets = new(StringComparer.Ordinal);

    public TransactionalIdState Owner { get; } = owner;

    /// <summary>When it began, on the cluster's clock: the coordinator aborts it once transaction.timeout.ms has passed.</summary>
    public long StartedAt { get; } = startedAt;

    public TransactionStatus Status { get; private set; } = TransactionStatus.Open;

    /// <summary>Notes a partition the transaction wrote to; true the first time, when its first record there holds the partition's last stable offset.</summary>
    public bool AddPartition(PartitionLog log) => _partitions.Add(log);

    /// <summary>SendOffsetsToTransaction: the group's offsets, which take effect only if the transaction commits.</summary>
    public void AddOffsets(string groupId, IEnumerable<TopicPartitionOffset> offsets)
    {
        if (!_offsets.TryGetValue(groupId, out var pending))
        {
            _offsets[groupId] = pending = [];
        }

        foreach (var offset in offsets)
        {
            pending[offset.TopicPartition] = offset.Offset.Value;
        }
    }

    /// <summary>Ends the transaction with a marker on every partition it wrote to; false if it had ended already.</summary>
    public bool End(bool commit)
    {
        if (Status != TransactionStatus.Open)
        {
            return false;
        }

        Status = commit ? TransactionStatus.Committed : TransactionStatus.Aborted;
        foreach (var log in _partitions)
        {
            log.CloseTransaction(this, commit);
        }

        return true;
    }

    /// <summary>A commit commits the offsets sent to the transaction to their groups.</summary>
    public void CommitOffsets(GroupCoordinator groups)
    {
        foreach (var (groupId, offsets) in _offsets)
        {
            var group = groups.For(groupId);
            foreach (var (partition, offset) in offsets)
            {
                group.Offsets.Commit(partition, offset);
            }
        }
    }
}
