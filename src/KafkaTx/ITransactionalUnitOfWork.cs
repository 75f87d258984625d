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
/// <para>Cancellation aborts what has not been committed, and never leaves the unit stuck: before the commit is sent,
/// the transaction is aborted (ExecuteAsync) or stays open (CommitAsync), and nothing is visible. A commit that was
/// sent is different: its outcome may already be decided. ExecuteAsync lets it run to its outcome within
/// <see cref="KafkaTransactionsOptions.CommitTimeout"/> whatever its token says, and returns that outcome. A commit
/// whose outcome stays unknown (it outlived CommitTimeout, or an explicit CommitAsync stopped waiting for it) leaves
/// the unit <see cref="TransactionState.Committing"/> and is settled by the next call on its own: ExecuteAsync and
/// InitializeAsync resume it first and, if it is still unknown, replace the producer, whose InitTransactions completes
/// or aborts it; CommitAsync resumes it and reports its outcome; ResetAsync replaces the producer. The table of every
/// phase is in <c>docs/error-handling.md</c>.</para>
/// <para>Disposing waits, at most <see cref="KafkaTransactionsOptions.CommitTimeout"/> plus
/// <see cref="KafkaTransactionsOptions.AbortTimeout"/>, for the call in flight (a commit completes, and the producer is
/// never aborted or closed under a running call); calls made once disposal has begun, and callers queued for the
/// unit, get <see cref="ObjectDisposedException"/>. Then it aborts a transaction still open and closes the producer. If
/// the call outlasts the wait, the unit is Disposed at once and its producer is closed when that call returns.</para>
/// </remarks>
public interface ITransactionalUnitOfWork : ITransactionScope, IAsyncDisposable, IDisposable
{
    /// <summary>The current state. It changes as calls run; read it for diagnostics and health, not for locking.</summary>
    TransactionState State { get; }

    /// <summary>
    /// Calls InitTransactions, once per producer: the coordinator fences any older producer with this
    /// transactional.id (bumping the epoch) and aborts whatever transaction that producer left open. ExecuteAsync
    /// calls it when needed; call it yourself to fail fast at start-up. Later calls return at once, except in
    /// <see cref="TransactionState.Committing"/>: then it settles the commit whose outcome is unknown first (it resumes
    /// it and, if its outcome is still unknown, replaces the producer and initializes the new one).
    /// </summary>
    /// <param name="cancellationToken">Cancels waiting; the unit stays <see cref="TransactionState.Uninitialized"/> and a later call resumes.
    /// A commit being settled runs to its outcome whatever the token says.</param>
    /// <returns>A task that completes when the producer is ready for transactions.</returns>
    /// <exception cref="KafkaTransactionException">Initialization failed: Retriable after <see cref="KafkaTransactionsOptions.InitTimeout"/> (call again), Fatal (for example not authorized for the transactional.id) or Fenced; or the unit was fenced or faulted earlier (Fenced or Fatal, with the error that ended it).</exception>
    Task InitializeAsync(CancellationToken cancellationToken = default);

    /// <summary>Opens a transaction. Legal only in <see cref="TransactionState.Ready"/>, and only when no other transaction is open.</summary>
    /// <exception cref="InvalidOperationException">The unit is not ready (the message names the state and the calls that work in it), or another transaction is open.</exception>
    /// <exception cref="KafkaTransactionException">The unit was fenced or faulted earlier: <see cref="KafkaTransactionException.Kind"/> is Fenced or Fatal and <see cref="Confluent.Kafka.KafkaException.Error"/> the error that ended it.</exception>
    void BeginTransaction();

    /// <summary>
    /// Commits the open transaction: waits for every record to be acknowledged, then makes them (and any sent
    /// offsets) visible atomically. Retriable errors are retried within <see cref="KafkaTransactionsOptions.CommitTimeout"/>.
    /// A transaction older than <see cref="KafkaTransactionsOptions.TransactionTimeout"/>, or with a failed record, is
    /// aborted instead and the call throws. In <see cref="TransactionState.Committing"/> (an earlier commit whose
    /// outcome is unknown, left by CommitAsync or by ExecuteAsync) it resumes that commit and reports its outcome.
    /// A commit that ends with an unknown outcome also ends the explicit transaction: the next call, whoever makes it,
    /// settles the commit (see the remarks of <see cref="ITransactionalUnitOfWork"/>).
    /// </summary>
    /// <param name="cancellationToken">Before the commit is sent, cancels it: <see cref="OperationCanceledException"/>,
    /// nothing sent, and the transaction stays open (<see cref="TransactionState.InTransaction"/>; commit or abort it).
    /// After the commit is sent, stops waiting for it: <see cref="OperationCanceledException"/>, the outcome is unknown,
    /// and the state is <see cref="TransactionState.Committing"/> until the next call settles it. This lets a single
    /// owner bound its own shutdown; pass <see cref="CancellationToken.None"/> to wait for the outcome (at most
    /// CommitTimeout). ExecuteAsync never stops waiting for a commit it sent.</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    /// <exception cref="InvalidOperationException">No transaction is open, or another explicit call is running (the message names the state and the calls that work in it).</exception>
    /// <exception cref="KafkaTransactionException">The commit failed; <see cref="KafkaTransactionException.Kind"/> says whether the transaction was aborted, the outcome is unknown, or the producer is fenced or faulted (now or by an earlier call).</exception>
    Task CommitAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Aborts the open transaction: nothing written in it becomes visible to read_committed consumers, and
    /// offsets sent in it are not committed. Retried within <see cref="KafkaTransactionsOptions.AbortTimeout"/>.
    /// In <see cref="TransactionState.Aborting"/> (an abort that did not complete, left by AbortAsync or by
    /// ExecuteAsync) it resumes that abort. A commit that was sent cannot be aborted.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting; the state stays <see cref="TransactionState.Aborting"/> and a later call (AbortAsync, or ExecuteAsync before its own transaction) resumes.</param>
    /// <returns>A task that completes when the transaction is aborted.</returns>
    /// <exception cref="InvalidOperationException">No transaction is open (the message names the state).</exception>
    /// <exception cref="KafkaTransactionException">The abort failed (Retriable after the timeout, or Fenced/Fatal), or the unit was fenced or faulted earlier.</exception>
    Task AbortAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs <paramref name="work"/> in a transaction and commits it. If the work throws, the transaction is aborted
    /// and the exception rethrown. Abortable failures abort and run the work again per
    /// <see cref="KafkaTransactionsOptions.Retry"/>; retriable commit errors retry the commit, not the work; a fenced
    /// or fatal producer is never retried. Before anything else it settles a commit an earlier call left with an
    /// unknown outcome, and finishes an abort that did not complete.
    /// </summary>
    /// <param name="work">The work. It may run more than once, each time in a new transaction; it must not have
    /// effects outside the transaction that a second run would duplicate.</param>
    /// <param name="cancellationToken">While waiting for the unit, initializing, or before the work returns (the work
    /// gets the token; a Produce waiting for room in a full queue honours it): the transaction is aborted, nothing of it
    /// is visible, and the call throws <see cref="OperationCanceledException"/>. Once the work has returned and the
    /// commit is sent, the token is no longer observed: the commit runs to its outcome within
    /// <see cref="KafkaTransactionsOptions.CommitTimeout"/> and the call reports that outcome (success, a failure, or
    /// <see cref="TransactionErrorKind.OutcomeUnknown"/>, which the next call settles on its own).</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    /// <exception cref="KafkaTransactionException">The transaction could not be committed; see <see cref="KafkaTransactionException.Kind"/>.
    /// A unit fenced or faulted earlier refuses the call with Kind Fenced or Fatal and the error that ended it.</exception>
    Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default);

    /// <summary>Runs <paramref name="work"/> in a transaction, commits it, and returns the work's result once committed.
    /// See <see cref="ExecuteAsync(Func{ITransactionScope, CancellationToken, ValueTask}, CancellationToken)"/>.</summary>
    /// <typeparam name="TResult">The result type.</typeparam>
    /// <param name="work">The work; it may run more than once.</param>
    /// <param name="cancellationToken">Aborts the transaction until the commit is sent; not observed after (see the other overload).</param>
    /// <returns>The result of the run whose transaction committed.</returns>
    Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces the producer after a fatal error, or after a commit or abort that could not be completed (the next
    /// ExecuteAsync or InitializeAsync settles those on its own too). The new producer's InitTransactions (run on next
    /// use) completes or aborts whatever the old one left pending.
    /// Not allowed when fenced: another instance owns the transactional.id, and taking it back would fence that one.
    /// </summary>
    /// <param name="cancellationToken">Cancels waiting for other callers to finish.</param>
    /// <returns>A task that completes when the unit is <see cref="TransactionState.Uninitialized"/> with a new producer.</returns>
    /// <exception cref="InvalidOperationException">The unit is disposed, or has a transaction open (abort it instead).</exception>
    /// <exception cref="KafkaTransactionException">The unit is fenced (Kind Fenced, with the error that fenced it): replace this instance.</exception>
    Task ResetAsync(CancellationToken cancellationToken = default);
}
