using System.Runtime.CompilerServices;

namespace KafkaTx;

/// <summary>
/// ExecuteAsync for synchronous work, on <see cref="ITransactionalUnitOfWork"/> and <see cref="ITransactionalUnitOfWorkPool"/>:
/// <c>await kafka.ExecuteAsync(tx =&gt; tx.Produce(...), ct);</c> without ending the work with
/// <c>return ValueTask.CompletedTask;</c>. The work takes one parameter (the scope), so a lambda with two,
/// <c>(tx, ct) =&gt; ...</c>, still binds to the asynchronous overloads on the interfaces.
/// </summary>
/// <remarks>
/// Extension methods rather than interface members, as Microsoft.Extensions layers conveniences over its abstractions
/// (<c>LoggerExtensions</c>, <c>DistributedCacheExtensions</c>): the interfaces keep the one contract an implementation
/// or decorator must honour, and every implementation gets these for free. Work that is asynchronous after all (a
/// one-parameter async lambda, or one returning a task) is refused before a transaction begins: it would be
/// committed before it completed.
/// </remarks>
public static class TransactionalUnitOfWorkExtensions
{
    /// <summary>
    /// Runs synchronous <paramref name="work"/> in a transaction and commits it, with everything
    /// <see cref="ITransactionalUnitOfWork.ExecuteAsync(Func{ITransactionScope, CancellationToken, ValueTask}, CancellationToken)"/>
    /// does: abort and rethrow when the work throws, runs again after abortable failures, a commit's outcome reported.
    /// </summary>
    /// <param name="unit">The unit of work.</param>
    /// <param name="work">The work, for example <c>tx =&gt; tx.Produce(topic, message)</c>. It may run more than once, each time in a new transaction.</param>
    /// <param name="cancellationToken">Aborts the transaction until the commit is sent; not observed after (see ExecuteAsync).</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    /// <exception cref="ArgumentException">The work is an async method (async void): write it as <c>async (tx, ct) =&gt; ...</c>.</exception>
    /// <exception cref="KafkaTransactionException">The transaction could not be committed; see <see cref="KafkaTransactionException.Kind"/>.</exception>
    public static Task ExecuteAsync(this ITransactionalUnitOfWork unit, Action<ITransactionScope> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(unit);
        return unit.ExecuteAsync(Synchronous(work), cancellationToken);
    }

    /// <summary>Runs synchronous <paramref name="work"/> in a transaction, commits it, and returns the work's result once committed.</summary>
    /// <typeparam name="TResult">What the work returns; not a task (asynchronous work takes <c>(tx, ct)</c>).</typeparam>
    /// <param name="unit">The unit of work.</param>
    /// <param name="work">The work; it may run more than once.</param>
    /// <param name="cancellationToken">Aborts the transaction until the commit is sent; not observed after.</param>
    /// <returns>The result of the run whose transaction committed.</returns>
    /// <exception cref="ArgumentException"><typeparamref name="TResult"/> is a task: the work is asynchronous, write it as <c>async (tx, ct) =&gt; ...</c>.</exception>
    /// <exception cref="KafkaTransactionException">The transaction could not be committed; see <see cref="KafkaTransactionException.Kind"/>.</exception>
    public static Task<TResult> ExecuteAsync<TResult>(this ITransactionalUnitOfWork unit, Func<ITransactionScope, TResult> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(unit);
        return unit.ExecuteAsync(Synchronous(work), cancellationToken);
    }

    /// <summary>Runs synchronous <paramref name="work"/> in a transaction of an idle slot, as <see cref="ExecuteAsync(ITransactionalUnitOfWork, Action{ITransactionScope}, CancellationToken)"/> does.</summary>
    /// <param name="pool">The pool.</param>
    /// <param name="work">The work; it may run more than once.</param>
    /// <param name="cancellationToken">Cancels waiting for a slot, and the transaction until the commit is sent.</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    /// <exception cref="ArgumentException">The work is an async method (async void): write it as <c>async (tx, ct) =&gt; ...</c>.</exception>
    /// <exception cref="KafkaTransactionException">The transaction failed; see ExecuteAsync.</exception>
    public static Task ExecuteAsync(this ITransactionalUnitOfWorkPool pool, Action<ITransactionScope> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pool);
        return pool.ExecuteAsync(Synchronous(work), cancellationToken);
    }

    /// <summary>Runs synchronous <paramref name="work"/> in a transaction of an idle slot and returns its result once committed.</summary>
    /// <typeparam name="TResult">What the work returns; not a task.</typeparam>
    /// <param name="pool">The pool.</param>
    /// <param name="work">The work; it may run more than once.</param>
    /// <param name="cancellationToken">Cancels waiting for a slot, and the transaction until the commit is sent.</param>
    /// <returns>The work's result, once its transaction is committed.</returns>
    /// <exception cref="ArgumentException"><typeparamref name="TResult"/> is a task: write the work as <c>async (tx, ct) =&gt; ...</c>.</exception>
    /// <exception cref="KafkaTransactionException">The transaction failed; see ExecuteAsync.</exception>
    public static Task<TResult> ExecuteAsync<TResult>(this ITransactionalUnitOfWorkPool pool, Func<ITransactionScope, TResult> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pool);
        return pool.ExecuteAsync(Synchronous(work), cancellationToken);
    }

    private static Func<ITransactionScope, CancellationToken, ValueTask<bool>> Synchronous(Action<ITransactionScope> work)
    {
        ArgumentNullException.ThrowIfNull(work);

        // An async void method converts to Action too: it would return at its first await, and be committed half done.
        if (work.Method.IsDefined(typeof(AsyncStateMachineAttribute), inherit: false))
        {
            throw new ArgumentException(
                $"ExecuteAsync was given an async void method ({work.Method.Name}): it returns at its first await, so its transaction would commit before it completed. Write asynchronous work with two parameters, async (tx, ct) => {{ ... }}, which ExecuteAsync awaits.",
                nameof(work));
        }

        return (scope, _) =>
        {
            work(scope);
            return new ValueTask<bool>(true);
        };
    }

    private static Func<ITransactionScope, CancellationToken, ValueTask<TResult>> Synchronous<TResult>(Func<ITransactionScope, TResult> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (Awaitable<TResult>.Is)
        {
            throw new ArgumentException(
                $"ExecuteAsync's synchronous overload was given work that returns {typeof(TResult).Name}: its transaction would commit before that task completed. Write asynchronous work with two parameters, async (tx, ct) => {{ ... }} or (tx, ct) => SomethingAsync(tx, ct), which ExecuteAsync awaits.",
                nameof(work));
        }

        return (scope, _) => new ValueTask<TResult>(work(scope));
    }

    /// <summary>Whether a result type is a task, that is: the work it comes from is asynchronous. Computed once per type.</summary>
    private static class Awaitable<T>
    {
        public static readonly bool Is =
            typeof(Task).IsAssignableFrom(typeof(T))
            || typeof(T) == typeof(ValueTask)
            || (typeof(T).IsGenericType && typeof(T).GetGenericTypeDefinition() == typeof(ValueTask<>));
    }
}
