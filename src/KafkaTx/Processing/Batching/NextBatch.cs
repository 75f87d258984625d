using Confluent.Kafka;

namespace KafkaTx.Processing.Batching;

/// <summary>
/// The records read for the batch handler's next call, before its transaction begins. The batch is due once it holds
/// as many as it may (MaxBatchSize, or fewer while <see cref="BatchBisection"/> tells a failed batch's records apart),
/// once MaxBatchDuration has passed since its first record, or at once when it reaches a record whose refused output
/// is being isolated (a commit of several records was refused: each commits on its own until the one at fault is
/// found, as with a record handler).
/// </summary>
/// <remarks>Used on the processor's thread only (rebalance callbacks run there too).</remarks>
internal sealed class NextBatch(TransactionalProcessorOptions options, RecordAttempts attempts, TimeProvider time)
{
    private readonly List<ConsumeResult<byte[]?, byte[]?>> _records = [];
    private long _firstAt;
    private bool _endsHere; // it holds a record being isolated: it must commit now, alone if it is the first

    /// <summary>How many records it holds.</summary>
    public int Count => _records.Count;

    /// <summary>A record was read: it joins the batch.</summary>
    public void Add(ConsumeResult<byte[]?, byte[]?> record)
    {
        if (_records.Count == 0)
        {
            _firstAt = time.GetTimestamp();
        }

        _records.Add(record);
        _endsHere |= attempts.IsIsolating(RecordKey.Of(record));
    }

    /// <summary>Whether the batch is due for the handler's call.</summary>
    /// <param name="now">A <see cref="TimeProvider"/> timestamp.</param>
    /// <param name="size">How many records the batch may hold.</param>
    public bool IsDue(long now, int size) =>
        _records.Count > 0 && (_endsHere || _records.Count >= size || time.GetElapsedTime(_firstAt, now) >= options.MaxBatchDuration);

    /// <summary>How long the next Consume may wait: never past the batch's deadline, and never longer than <see cref="BatchSchedule.IdlePoll"/>.</summary>
    public TimeSpan ConsumeTimeout(long now)
    {
        if (_records.Count == 0)
        {
            return BatchSchedule.IdlePoll;
        }

        var remaining = options.MaxBatchDuration - time.GetElapsedTime(_firstAt, now);
        return remaining <= TimeSpan.Zero ? TimeSpan.Zero : remaining < BatchSchedule.IdlePoll ? remaining : BatchSchedule.IdlePoll;
    }

    /// <summary>Takes the batch's records: the batch is empty again.</summary>
    public List<ConsumeResult<byte[]?, byte[]?>> Take()
    {
        List<ConsumeResult<byte[]?, byte[]?>> records = [.. _records];
        Clear();
        return records;
    }

    /// <summary>Drops every record: a rewind reads them again.</summary>
    public void Clear()
    {
        _records.Clear();
        _endsHere = false;
    }

    /// <summary>These partitions are revoked or lost: their records are their next owner's.</summary>
    public void Leaving(IReadOnlySet<TopicPartition> partitions)
    {
        _records.RemoveAll(r => partitions.Contains(r.TopicPartition));
        _endsHere = _records.Exists(r => attempts.IsIsolating(RecordKey.Of(r)));
    }
}
