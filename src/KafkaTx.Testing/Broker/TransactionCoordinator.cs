namespace KafkaTx.Testing.Broker;

/// <summary>
/// The transaction coordinator: a producer id and epoch per transactional.id (InitTransactions fences the previous
/// producer and aborts what it left open), the open transactions, and their end: markers on every partition written,
/// and, with a commit, the offsets sent to the transaction committed to their groups. Like Kafka's, it aborts
/// transactions older than their transaction.timeout.ms. Every member runs under the cluster's lock.
/// </summary>
internal sealed class TransactionCoordinator(object sync, TimeProvider time, GroupCoordinator groups)
{
    private readonly Dictionary<string, TransactionalIdState> _transactionalIds = new(StringComparer.Ordinal);
    private readonly List<TransactionRecord> _open = [];
    private long _nextProducerId = 1000;

    /// <summary>The longest time any transaction stayed open, from Begin to its commit or abort (for tests).</summary>
    public TimeSpan LongestTransaction { get; private set; }

    /// <summary>Transactions the coordinator aborted because they outlived their transaction.timeout.ms (for tests).</summary>
    public int TimedOut { get; private set; }

    public TransactionalIdState For(string transactionalId)
    {
        if (!_transactionalIds.TryGetValue(transactionalId, out var state))
        {
            _transactionalIds[transactionalId] = state = new TransactionalIdState(transactionalId, _nextProducerId++, time);
        }

        return state;
    }

    /// <summary>InitTransactions: bump the epoch, abort what the previous epoch left open.</summary>
    public TransactionalIdState InitTransactions(string transactionalId, TimeSpan transactionTimeout)
    {
        var state = For(transactionalId);
        AbortOpen(state);
        state.Initialize(transactionTimeout);
        return state;
    }

    /// <summary>Fences the current producer of a transactional.id, as a new instance would: its open transaction is aborted, the epoch bumped.</summary>
    public void Fence(string transactionalId)
    {
        var state = For(transactionalId);
        AbortOpen(state);
        state.BumpEpoch();
    }

    public TransactionRecord Begin(TransactionalIdState state)
    {
        var transaction = new TransactionRecord(state, time.GetTimestamp());
        state.Began(transaction);
        _open.Add(transaction);
        return transaction;
    }

    public void Complete(TransactionRecord transaction, bool commit)
    {
        if (!transaction.End(commit))
        {
            return;
        }

        if (commit)
        {
            transaction.CommitOffsets(groups);
        }

        var open = time.GetElapsedTime(transaction.StartedAt);
        LongestTransaction = open > LongestTransaction ? open : LongestTransaction;

        _open.Remove(transaction);
        transaction.Owner.Ended(transaction);
        Monitor.PulseAll(sync);
    }

    /// <summary>Aborts a transaction and fences its producer, as Kafka's coordinator does on a timeout or a fencing error.</summary>
    public void AbortAndFence(TransactionRecord transaction)
    {
        Complete(transaction, commit: false);
        transaction.Owner.BumpEpoch();
    }

    /// <summary>The coordinator's timeout: open transactions older than their transaction.timeout.ms are aborted, and the late producer fenced.</summary>
    public void AbortExpired()
    {
        if (_open.Count == 0)
        {
            return;
        }

        // Backwards, because Complete removes the transaction from the list; no copy on this per-Consume path.
        for (var i = _open.Count - 1; i >= 0; i--)
        {
            var transaction = _open[i];
            if (time.GetElapsedTime(transaction.StartedAt) > transaction.Owner.TransactionTimeout)
            {
                TimedOut++;
                AbortAndFence(transaction);
            }
        }
    }

    private void AbortOpen(TransactionalIdState state)
    {
        if (state.Open is { } open)
        {
            Complete(open, commit: false);
        }
    }
}
