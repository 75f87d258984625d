namespace KafkaTx;

/// <summary>
/// The states of an <see cref="ITransactionalUnitOfWork"/>. Every call is legal only in some states;
/// an illegal call throws <see cref="InvalidOperationException"/> naming the state and the call, and sends nothing. In
/// <see cref="Fenced"/> and <see cref="Faulted"/> (Kafka's verdict, not a misuse) every call is refused with a
/// <see cref="KafkaTransactionException"/> of kind <see cref="TransactionErrorKind.Fenced"/> or
/// <see cref="TransactionErrorKind.Fatal"/> that carries the error which ended the unit.
/// </summary>
/// <remarks>See <c>docs/state-machine.md</c> for the full transition table.</remarks>
public enum TransactionState
{
    /// <summary>The producer exists but InitTransactions has not completed. Next: initialize (done automatically by ExecuteAsync).</summary>
    Uninitialized = 0,

    /// <summary>InitTransactions is running: the coordinator is bumping the epoch and aborting what a previous instance left open.</summary>
    Initializing,

    /// <summary>Initialized and idle: a transaction may begin.</summary>
    Ready,

    /// <summary>A transaction is open: records may be produced and offsets sent.</summary>
    InTransaction,

    /// <summary>
    /// A commit is in progress, or was sent and its outcome is not yet known (it outlived CommitTimeout, or an explicit
    /// CommitAsync stopped waiting when cancelled). Nothing may be assumed committed. The next ExecuteAsync,
    /// InitializeAsync or CommitAsync settles it on its own (resuming the commit, else replacing the producer, whose
    /// InitTransactions completes or aborts it); ResetAsync and disposal are legal too.
    /// </summary>
    Committing,

    /// <summary>An abort is in progress, or timed out and must be resumed with AbortAsync.</summary>
    Aborting,

    /// <summary>
    /// Terminal: a newer producer with the same transactional.id took over. The producer has been disposed;
    /// this instance is a zombie and must stop writing.
    /// </summary>
    Fenced,

    /// <summary>
    /// A fatal error made the producer unusable. Call ResetAsync to replace the producer (its InitTransactions
    /// aborts the pending transaction), or dispose the unit.
    /// </summary>
    Faulted,

    /// <summary>Terminal: the unit has been disposed.</summary>
    Disposed,
}
