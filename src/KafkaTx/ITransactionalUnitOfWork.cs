namespace KafkaTx;

/// <summary>
/// A transactional Kafka producer as an explicit state machine (see <see cref="TransactionState"/>): initialize once,
/// then begin, produce, commit or abort, with every transition guarded and every failure classified
/// (<see cref="TransactionErrorKind"/>).
/// </summary>
/// <remarks>
/// <para>Most code calls <see cref="ExecuteAsync(Func{ITransactionScope, CancellationToken, ValueTask}, CancellationToken)"/>,
/// which begins, runs the work, commits, and applies the right reaction to each failure. Concurrent ExecuteAsync
/// callers are queued: one transaction is open at a time, and each caller's work runs in a transaction of its own.</para>
/// <para>The explicit calls (<see cref="BeginTransaction"/>, <see cref="CommitAsync"/>, <see cref="AbortAsync"/>) are for
/// a single owner such as a consume-transform-produce loop. They do not queue: beginning while another transaction
/// is open throws.</para>
/// <para>One instance owns one producer and one transactional.id. Create one per instance of your service, never one
/// per request: see <c>docs/transactional-id.md</c>.</para>
/// </remarks>
public interface ITransactionalUnitOfWork : ITransactionScope, IAsyncDisposable, IDisposable
{
    /// <summary>The current state. It changes as calls run; read it for diagnostics and health, not for locking.</summary>
    TransactionState State { get; }

    /// <summary>
    /// Calls InitTransactions, once per producer: the coordinator fences any older producer with this
    /// transactional.id (bumping the epoch) and aborts whatever transaction that producer left open. ExecuteAsync
    /// calls it when needed; call it yourself to fail fast at start-up. Later calls return at once.
    /// </summary>
    /// <param name="cancellationToken">Cancels waiting; the unit stays <see cref="TransactionState.Uninitialized"/> and a later call resumes.</param>
    /// <returns>A task that completes when the producer is ready for transactions.</returns>
    /// <exception cref="KafkaTransactionException">Initialization failed: Retriable after <see cref="KafkaTransactionsOptions.InitTimeout"/> (call again), Fatal (for example not authorized for the transactional.id) or Fenced.</exception>
    Task InitializeAsync(CancellationToken cancellationToken = default);

    /// <summary>Opens a transaction. Legal only in <see cref="TransactionState.Ready"/>, and only when no other transaction is open.</summary>
    /// <exception cref="InvalidOperationException">The unit is not ready (the message names the state), or another transaction is open.</exception>
    void BeginTransaction();

    /// <summary>
    /// Commits the open transaction: waits for every record to be acknowledged, then makes them (and any sent
    /// offsets) visible atomically. Retriable errors are retried within <see cref="KafkaTransactionsOptions.CommitTimeout"/>.
    /// A transaction older than <see cref="KafkaTransactionsOptions.TransactionTimeout"/>, or with a failed record, is
    /// aborted instead and the call throws. In <see cref="TransactionState.Committing"/> (an earlier commit with an
    /// unknown outcome) it resumes that commit.
    /// </summary>
    /// <param name="cancellationToken">Before the commit is sent, cancels it and leaves the transaction open. After, stops waiting: the outcome is then unknown and the state stays <see cref="TransactionState.Committing"/>.</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    /// <exception cref="InvalidOperationException">No transaction is open (the message names the state).</exception>
    /// <exception cref="KafkaTransactionException">The commit failed; <see cref="KafkaTransactionException.Kind"/> says whether the transaction was aborted, the outcome is unknown, or the producer is fenced or faulted.</exception>
    Task CommitAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Aborts the open transaction: nothing written in it becomes visible to read_committed consumers, and
    /// offsets sent in it are not committed. Retried within <see cref="KafkaTransactionsOptions.AbortTimeout"/>.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting; the state stays <see cref="TransactionState.Aborting"/> and a later call resumes.</param>
    /// <returns>A task that completes when the transaction is aborted.</returns>
    /// <exception cref="InvalidOperationException">No transaction is open (the message names the state).</exception>
    /// <exception cref="KafkaTransactionException">The abort failed (Retriable after the timeout, or Fenced/Fatal).</exception>
    Task AbortAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs <paramref name="work"/> in a transaction and commits it. If the work throws, the transaction is aborted
    /// and the exception rethrown. Abortable failures abort and run the work again per
    /// <see cref="KafkaTransactionsOptions.Retry"/>; retriable commit errors retry the commit, not the work; a fenced
    /// or fatal producer is never retried. Cancellation aborts and throws <see cref="OperationCanceledException"/>.
    /// </summary>
    /// <param name="work">The work. It may run more than once, each time in a new transaction; it must not have
    /// effects outside the transaction that a second run would duplicate.</param>
    /// <param name="cancellationToken">Aborts the transaction and stops.</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    /// <exception cref="KafkaTransactionException">The transaction could not be committed; see <see cref="KafkaTransactionException.Kind"/>.</exception>
    Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default);

    /// <summary>Runs <paramref name="work"/> in a transaction, commits it, and returns the work's result once committed.
    /// See <see cref="ExecuteAsync(Func{ITransactionScope, CancellationToken, ValueTask}, CancellationToken)"/>.</summary>
    /// <typeparam name="TResult">The result type.</typeparam>
    /// <param name="work">The work; it may run more than once.</param>
    /// <param name="cancellationToken">Aborts the transaction and stops.</param>
    /// <returns>The result of the run whose transaction committed.</returns>
    Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces the producer after a fatal error, or after a commit or abort that could not be completed. The new
    /// producer's InitTransactions (run on next use) completes or aborts whatever the old one left pending.
    /// Not allowed when fenced: another instance owns the transactional.id, and taking it back would fence that one.
    /// </summary>
    /// <param name="cancellationToken">Cancels waiting for other callers to finish.</param>
    /// <returns>A task that completes when the unit is <see cref="TransactionState.Uninitialized"/> with a new producer.</returns>
    /// <exception cref="InvalidOperationException">The unit is fenced, disposed, or has a transaction open (abort it instead).</exception>
    Task ResetAsync(CancellationToken cancellationToken = default);
}
