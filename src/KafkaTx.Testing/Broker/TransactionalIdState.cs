namespace KafkaTx.Testing.Broker;

/// <summary>
/// What the coordinator keeps per transactional.id: the producer id, the current epoch (a producer with an older one
/// is fenced), the transaction timeout, the open transaction, and the faults injected for it. Every member runs under
/// the cluster's lock.
/// </summary>
internal sealed class TransactionalIdState(string transactionalId, long producerId, TimeProvider time)
{
    public string TransactionalId { get; } = transactionalId;

    public long ProducerId { get; } = producerId;

    public int Epoch { get; private set; } = -1;

    public TimeSpan TransactionTimeout { get; private set; } = TimeSpan.FromMinutes(1);

    public TransactionRecord? Open { get; private set; }

    public TransactionFaults Faults { get; } = new(time);

    /// <summary>InitTransactions: a new epoch, with the new producer's transaction.timeout.ms.</summary>
    public void Initialize(TimeSpan transactionTimeout)
    {
        Epoch++;
        TransactionTimeout = transactionTimeout;
    }

    /// <summary>Fences the current producer: its next transactional call finds a newer epoch.</summary>
    public void BumpEpoch() => Epoch++;

    public void Began(TransactionRecord transaction) => Open = transaction;

    public void Ended(TransactionRecord transaction)
    {
        if (Open == transaction)
        {
            Open = null;
        }
    }
}
