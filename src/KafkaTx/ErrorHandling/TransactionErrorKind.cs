namespace KafkaTx;

/// <summary>
/// What a transactional failure means for the caller. Each kind implies one reaction, which
/// <see cref="ITransactionalUnitOfWork.ExecuteAsync(Func{ITransactionScope, CancellationToken, ValueTask}, CancellationToken)"/>
/// applies automatically. See <c>docs/error-handling.md</c> for the mapping of every Kafka error.
/// </summary>
public enum TransactionErrorKind
{
    /// <summary>
    /// A newer instance with the same transactional.id has initialized: this producer is a zombie.
    /// Stop writing; never retry. Usually two running instances share one transactional.id.
    /// </summary>
    Fenced = 1,

    /// <summary>
    /// The producer is unusable (for example an invalid transaction state, a lost idempotence sequence, or a
    /// missing authorization). Replace the producer; its InitTransactions aborts the pending transaction.
    /// </summary>
    Fatal,

    /// <summary>
    /// The current transaction failed and was (or must be) aborted; the producer stays usable and the work may
    /// run again in a new transaction.
    /// </summary>
    Abortable,

    /// <summary>
    /// The call failed for a transient reason (typically a timeout while the coordinator was unavailable); the same
    /// call may be repeated and librdkafka resumes it. The transaction is still open or still being completed.
    /// </summary>
    Retriable,

    /// <summary>
    /// Kafka refused a record or request for a reason that retrying does not fix (record too large, unknown topic,
    /// not authorized for a topic or group). The transaction was aborted; fix the input or the configuration.
    /// </summary>
    Rejected,

    /// <summary>
    /// A commit was sent but whether it took effect is unknown (it outlived CommitTimeout). Never treat this as
    /// success. The unit settles it on its own at its next call (ExecuteAsync, InitializeAsync or CommitAsync resume
    /// the commit, else replace the producer, whose InitTransactions completes or aborts it); check the output
    /// (read_committed) before doing the work again. Work is never re-run automatically after this.
    /// </summary>
    OutcomeUnknown,
}
