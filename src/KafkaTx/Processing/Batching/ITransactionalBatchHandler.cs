using Confluent.Kafka;

namespace KafkaTx;

/// <summary>
/// Consume-transform-produce a transaction's records at once: one call receives every record of the transaction (a
/// bulk lookup, one database round trip per batch), and what it writes commits together with the consumer's progress
/// past all of them. Register it with <see cref="TransactionalProcessorBuilderExtensions.AddTransactionalProcessor{THandler}"/>,
/// as a record handler.
/// </summary>
/// <typeparam name="TKey">The input key type (deserialized with a registered or built-in deserializer).</typeparam>
/// <typeparam name="TValue">The input value type.</typeparam>
/// <remarks>
/// A batch holds up to <see cref="TransactionalProcessorOptions.MaxBatchSize"/> records, those read within
/// <see cref="TransactionalProcessorOptions.MaxBatchDuration"/> of its first: records of several partitions, each
/// partition's in offset order. Records are handled one batch at a time
/// (<see cref="TransactionalProcessorOptions.MaxConcurrency"/> must be 1). When the call throws, the transaction is
/// aborted and the partitions rewound; the processor then finds the record at fault without giving up the others: it
/// retries the batch once whole (a transient failure passes), then in halves, down to one record. Only a record that
/// fails alone is charged an attempt, and after <see cref="TransactionRetryOptions.MaxAttempts"/> it alone meets the
/// <see cref="TransactionalProcessorOptions.PoisonRecordPolicy"/> (a poison record is never handed to the handler
/// again). So a handler runs more than once for the same records, and must not have side effects outside the
/// transaction. One handler instance is resolved from a DI scope per transaction, and called with no synchronization
/// context. See docs/parallel-processing.md.
/// </remarks>
public interface ITransactionalBatchHandler<TKey, TValue>
{
    /// <summary>
    /// Handles the records of one transaction. Throw to fail the batch: the transaction is aborted, the partitions
    /// rewound, and the records handed over again, in smaller batches while the one at fault is looked for.
    /// </summary>
    /// <param name="records">The records, at least one; each partition's in offset order. Yours to keep: the processor does not reuse the list.</param>
    /// <param name="transaction">Writes records into the open transaction.</param>
    /// <param name="cancellationToken">Signalled when the processor stops and its ShutdownTimeout has run out: the batch then aborts.</param>
    /// <returns>A task that completes when every record is handled.</returns>
    ValueTask HandleAsync(IReadOnlyList<ConsumeResult<TKey, TValue>> records, ITransactionScope transaction, CancellationToken cancellationToken);
}
