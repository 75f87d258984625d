using Confluent.Kafka;

namespace KafkaTx;

/// <summary>
/// Your part of consume-transform-produce: turn one consumed record into records written through the transaction.
/// The processor commits what the handler writes together with the consumer's progress, so each input record's
/// outputs become visible exactly once.
/// </summary>
/// <typeparam name="TKey">The input key type (deserialized with a registered or built-in deserializer).</typeparam>
/// <typeparam name="TValue">The input value type.</typeparam>
/// <remarks>
/// A handler may run more than once for the same record (after an abort the partition is rewound and its records
/// are processed again), so it must not have side effects outside the transaction. One handler instance is resolved
/// from a DI scope per transaction. With <see cref="TransactionalProcessorOptions.MaxConcurrency"/> above 1, handler
/// calls run concurrently: each starts on the processor's thread (without its synchronization context, as with 1) and
/// goes on on the thread pool from its first await that does not complete at once, so offload CPU-heavy work with
/// Task.Run if it should run in parallel. Each concurrent call gets a handler instance of its own, resolved
/// from a DI scope of its own (one per handler slot, reused by that slot's calls during the transaction, disposed when
/// the transaction ends): a scoped service such as a DbContext is never used by two calls at once. Singletons the
/// handler uses must be thread-safe; writing through the <see cref="ITransactionScope"/> is. Each concurrent call's
/// <see cref="ITransactionScope"/> is valid until the call returns: a write after that (from a task the call left
/// running, or from a call that ignored its cancellation and was abandoned) throws <see cref="InvalidOperationException"/>.
/// </remarks>
public interface ITransactionalHandler<TKey, TValue>
{
    /// <summary>Handles one record. Throw to fail it: the transaction is aborted, the partitions rewound, and the record retried.</summary>
    /// <param name="record">The consumed record.</param>
    /// <param name="transaction">Writes records into the open transaction.</param>
    /// <param name="cancellationToken">Signalled when the processor stops.</param>
    /// <returns>A task that completes when the record is handled.</returns>
    ValueTask HandleAsync(ConsumeResult<TKey, TValue> record, ITransactionScope transaction, CancellationToken cancellationToken);
}
