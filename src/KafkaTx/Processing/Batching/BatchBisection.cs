namespace KafkaTx.Processing.Batching;

/// <summary>
/// Finds the poison record of a batch handed to a batch handler without giving up the batch's good records. A batch
/// handler fails for the whole batch, so which record is at fault is unknown: the failed batch is tried once more
/// whole (a transient failure passes), then in smaller and smaller batches, each half the size of the last that
/// failed. Every batch that commits clears its records and doubles the size again; a batch of one record that fails
/// is that record's own failure, charged to it alone (and after MaxAttempts it is poison). Once no suspect is left,
/// batches are full-size again.
/// </summary>
/// <remarks>
/// After an abort the consumer is rewound, so the suspects come back, in whatever order the partitions interleave:
/// any split works, since every smaller batch that commits shrinks the suspects and every one that fails halves the
/// size, down to one record. Records that arrive meanwhile simply ride along. Used on the processor's thread only.
/// </remarks>
internal sealed class BatchBisection
{
    private readonly HashSet<RecordKey> _suspects = [];
    private int _cap;
    private bool _retriedWhole;

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
            _cap = 1;
            return batch[0];
        }

        var wasIsolating = IsIsolating;
        foreach (var key in batch)
        {
            _suspects.Add(key);
        }

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

        foreach (var key in batch)
        {
            _suspects.Remove(key);
        }

        if (!IsIsolating)
        {
            _retriedWhole = false;
            return;
        }

        // A batch that commits says its neighbourhood is clean: the size grows back, so the suspects left after the
        // poison record was found commit in a few batches, not one by one.
        _cap = _cap >= int.MaxValue / 2 ? int.MaxValue : _cap * 2;
    }

    /// <summary>The partitions moved away (revoked or lost): their records are another instance's to tell apart.</summary>
    public void Forget(Func<RecordKey, bool> movedAway)
    {
        _suspects.RemoveWhere(key => movedAway(key));
        if (!IsIsolating)
        {
            _retriedWhole = false;
        }
    }
}
