namespace KafkaTx;

/// <summary>
/// Several units of work, for services that need more than one transaction in flight (many concurrent requests,
/// each writing atomically). Each slot is a unit of work with its own producer and its own transactional.id,
/// <c>{transactional.id}-slot-{n}</c> for n from 0 to <see cref="Size"/> - 1: stable across restarts, so a restarted
/// instance fences the previous incarnation of every slot, as a single unit of work does for its one id.
/// </summary>
/// <remarks>
/// <para>Each ExecuteAsync call leases an idle slot for the call's whole transaction (retries included), and waits
/// when all are busy. Idle slots are handed out least recently used first, so every slot takes its turn. Slots are
/// created when first needed; <see cref="InitializeAsync"/> creates and initializes them all, which fences every
/// slot's zombie at once: call it at start-up. A slot that fails to be created fails only its call.</para>
/// <para>A slot that cannot serve is not handed out as it is: a Faulted slot gets a new producer first (as
/// <see cref="ITransactionalUnitOfWork.ResetAsync"/> does), and a slot whose last commit has an unknown outcome settles
/// it before its next transaction. Once any slot is Fenced, the pool refuses every call with
/// <see cref="KafkaTransactionException"/> of kind <see cref="TransactionErrorKind.Fenced"/> (carrying the error that
/// fenced the slot) and creates or initializes no other slot: the slots share this instance's
/// transactional.id prefix, so a newer instance owns them all, and initializing one here would fence it.</para>
/// <para>Disposing the pool wakes the callers waiting for a slot (<see cref="ObjectDisposedException"/>) and disposes
/// every slot, each waiting (bounded) for its call in flight, as a unit of work does.</para>
/// <para>Register with <c>AddKafkaTransactions(...).AddUnitOfWorkPool(size)</c>; resolve it by the producer's name
/// as a keyed service, or without a key for the default producer.</para>
/// </remarks>
public interface ITransactionalUnitOfWorkPool : IAsyncDisposable
{
    /// <summary>How many slots, and so how many transactions can be open at once.</summary>
    int Size { get; }

    /// <summary>The transactional.id of each slot, in slot order.</summary>
    IReadOnlyList<string> TransactionalIds { get; }

    /// <summary>Creates and initializes every slot (InitTransactions for each transactional.id), fencing any older producer with those ids.</summary>
    /// <param name="cancellationToken">Cancels waiting.</param>
    /// <returns>A task that completes when every slot is ready.</returns>
    /// <exception cref="KafkaTransactionException">A slot could not initialize (see <see cref="ITransactionalUnitOfWork.InitializeAsync"/>);
    /// Kind Fenced when a slot of the pool was fenced: no other slot is initialized.</exception>
    Task InitializeAsync(CancellationToken cancellationToken = default);

    /// <summary>Runs the work in a transaction of an idle slot, as <see cref="ITransactionalUnitOfWork.ExecuteAsync(Func{ITransactionScope, CancellationToken, ValueTask}, CancellationToken)"/> does.</summary>
    /// <param name="work">The records to write; it may run more than once after abortable failures.</param>
    /// <param name="cancellationToken">Cancels waiting for a slot, and the transaction as ExecuteAsync does (not the commit once sent).</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    /// <exception cref="KafkaTransactionException">The transaction failed; see ExecuteAsync. Kind Fenced when a slot of the pool was fenced: the pool refuses every call.</exception>
    Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default);

    /// <summary>Runs the work in a transaction of an idle slot and returns its result once committed.</summary>
    /// <typeparam name="TResult">What the work returns.</typeparam>
    /// <param name="work">The records to write; it may run more than once after abortable failures.</param>
    /// <param name="cancellationToken">Cancels waiting for a slot, and the transaction as ExecuteAsync does (not the commit once sent).</param>
    /// <returns>The work's result, once its transaction is committed.</returns>
    /// <exception cref="KafkaTransactionException">The transaction failed; see ExecuteAsync. Kind Fenced when a slot of the pool was fenced: the pool refuses every call.</exception>
    Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default);
}
