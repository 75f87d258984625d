using Confluent.Kafka;

namespace KafkaTx.Processing.Batching;

/// <summary>
/// Finds the poison record of a batch handed to a batch handler without giving up the batch's good records. A batch
/// handler fails for the whole batch, so which record is at fault is unknown: the failed batch is tried once more
/// whole (a transient failure passes), then in smaller and smaller batches, each half the size of the last that
/// failed; a batch that commits meanwhile keeps the size, so that the other half of the failed batch is tried next. A
/// batch of one record that fails is that record's own failure, charged to it alone (and after MaxAttempts it is
/// poison); batches stay at one record until it commits or is dead-lettered, and then double at every commit. Once no
/// suspect is left, batches are full-size again.
/// </summary>
/// <remarks>
/// After an abort the consumer is rewound, so the suspects come back, in whatever order the partitions interleave:
/// any split works, since every smaller batch that commits shrinks the suspects and every one that fails halves the
/// size, down to one record. Holding the size after a commit matters there: with partitions read in turn, the record at
/// fault may always come second, and a size doubled at every commit would try it in pairs for ever (a commit, then a
/// failed pair, then a commit...) without ever trying it alone. Records that arrive meanwhile simply ride along.
/// Suspects at or below a committed offset of their partition are cleared too, so that none lingers (a commit whose
/// outcome was unknown may have committed it: it never comes back). Used on the processor's thread only.
/// </remarks>
internal sealed class BatchBisection
{
    private readonly HashSet<RecordKey> _suspects = [];
    private readonly HashSet<RecordKey> _failedAlone = []; // suspects that failed alone: charged, not resolved yet
    private int _cap;
    private bool _retriedWhole;
    private bool _growing; // the record found at fault was resolved: the size grows back

    /// <summary>Whether a failed batch's records are still being told apart.</summary>
    public bool IsIsolating => _suspects.Count > 0;

    /// <summary>How many records the next batch may hold.</summary>
    /// <param name="maxBatchSize">The processor's MaxBatchSize.</param>
    public int NextBatchSize(int maxBatchSize) => IsIsolating ? Math.Min(_cap, maxBatchSize) : maxBatchSize;

    /// <summary>The batch handler failed on these records (the transaction was aborted and the consumer rewound).</summary>
    /// <param name="batch">The records of the failed batch.</param>
    /// <returns>
    /// The record to charge with the failure when the batch held one record (it failed alone: its own fault); null
    /// while the fault is still shared.
    /// </returns>
    public RecordKey? Failed(IReadOnlyList<RecordKey> batch)
    {
        if (batch.Count == 0)
        {
            return null;
        }

        if (batch.Count == 1)
        {
            // Stays a suspect until it commits or is dead-lettered; later batches stay at one record until then.
            _suspects.Add(batch[0]);
            _failedAlone.Add(batch[0]);
            _cap = 1;
            return batch[0];
        }

        var wasIsolating = IsIsolating;
        foreach (var key in batch)
        {
            _suspects.Add(key);
        }

        _growing = false;
        if (!wasIsolating && !_retriedWhole)
        {
            _retriedWhole = true; // the first failure of a batch: try it once more whole, a transient cause passes
            _cap = batch.Count;
        }
        else
        {
            _cap = Math.Max(1, batch.Count / 2);
        }

        return null;
    }

    /// <summary>These records committed (handled, or written to the dead-letter topic): they are suspects no more.</summary>
    public void Committed(IReadOnlyList<RecordKey> batch)
    {
        if (!IsIsolating)
        {
            _retriedWhole = false;
            return;
        }

        // Each partition's records commit in offset order: a suspect at or below a committed record of its partition
        // has committed, in this batch or before (after a commit whose outcome was unknown, say: it never comes back).
        var committedThrough = new Dictionary<TopicPartition, long>();
        foreach (var key in batch)
        {
            committedThrough[key.TopicPartition] = Math.Max(key.Offset, committedThrough.GetValueOrDefault(key.TopicPartition, -1));
        }

        bool Passed(RecordKey key) => committedThrough.TryGetValue(key.TopicPartition, out var through) && key.Offset <= through;
        _suspects.RemoveWhere(Passed);
        _growing |= _failedAlone.RemoveWhere(Passed) > 0; // the record at fault is resolved
        if (!IsIsolating)
        {
            Reset();
            return;
        }

        if (_failedAlone.Count > 0)
        {
            _cap = 1; // a record that failed alone is tried alone again, until it commits or is dead-lettered
        }
        else if (_growing)
        {
            // The record at fault was found: the size grows back, so the suspects left commit in a few batches, not one by one.
            _cap = _cap >= int.MaxValue / 2 ? int.MaxValue : _cap * 2;
        }

        // Else the search goes on at the same size: the other half of the batch that failed comes next.
    }

    /// <summary>The partitions moved away (revoked or lost): their records are another instance's to tell apart.</summary>
    public void Forget(Func<RecordKey, bool> movedAway)
    {
        _suspects.RemoveWhere(key => movedAway(key));
        _failedAlone.RemoveWhere(key => movedAway(key));
        if (!IsIsolating)
        {
            Reset();
        }
    }

    private void Reset()
    {
        _failedAlone.Clear();
        _retriedWhole = false;
        _growing = false;
    }
}
