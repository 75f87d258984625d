namespace KafkaTx;

/// <summary>
/// What a failed transaction left behind: whether its records are surely not visible, or may be. Read it from
/// <see cref="KafkaTransactionException.Outcome"/> before <see cref="KafkaTransactionException.Kind"/> when deciding
/// whether the work may be done again.
/// </summary>
public enum TransactionOutcome
{
    /// <summary>
    /// Nothing was committed: the failure came before the commit was sent, the transaction was aborted, or the call
    /// was refused. No record of the transaction is visible to read_committed consumers; doing the work again is safe
    /// as far as Kafka is concerned.
    /// </summary>
    NotCommitted,

    /// <summary>
    /// The commit was sent and then failed (the producer was fenced, hit a fatal error, or the commit did not
    /// complete within CommitTimeout): the transaction may or may not have committed. Check the output
    /// (read_committed) or use an idempotency key before doing the work again.
    /// </summary>
    Unknown,
}
