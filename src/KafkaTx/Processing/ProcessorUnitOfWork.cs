using KafkaTx.Retry;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Processing;

/// <summary>
/// The processor's calls on its unit of work that take more than one call: initializing it (retrying while the
/// coordinator is away), settling a pending commit, beginning a transaction that a full queue may not hold up past
/// the drain; and telling the unit's transaction failures from others.
/// </summary>
internal sealed class ProcessorUnitOfWork(ITransactionalUnitOfWork unit, TransactionalProcessorOptions options, TimeProvider time, ProcessorTelemetry telemetry)
{
    /// <summary>Initializes the producer; while the coordinator is unavailable, keeps trying until the host stops.</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        var attempt = 1;
        while (true)
        {
            try
            {
                await unit.InitializeAsync(cancellationToken).ConfigureAwait(true);
                return;
            }
            catch (KafkaTransactionException e) when (e.Kind == TransactionErrorKind.Retriable)
            {
                var delay = RetryBackoff.DelayBefore(options.Retry, ++attempt, Random.Shared.NextDouble());
                telemetry.InitRetry(delay, e);
                await Task.Delay(delay, time, cancellationToken).ConfigureAwait(true);
            }
        }
    }

    /// <summary>
    /// Settles a commit whose outcome is unknown: a new producer's InitTransactions returns only once the coordinator
    /// has finished the pending transaction, markers included, so offsets read afterwards are final.
    /// </summary>
    public async Task SettlePendingAsync(CancellationToken cancellationToken)
    {
        try
        {
            await unit.InitializeAsync(cancellationToken).ConfigureAwait(true);
        }
        catch (KafkaTransactionException e) when (e.Kind == TransactionErrorKind.Retriable)
        {
            // The coordinator is away: the next transaction initializes the producer; the rewind may read offsets
            // that are not final yet, which only a broker before 2.5 can show, and only while it is this slow.
            telemetry.SettleDeferred(e);
        }
    }

    /// <param name="drainToken">The transaction's own: a Produce waiting for room in a full queue stops when it is cancelled.</param>
    public void BeginTransaction(CancellationToken drainToken)
    {
        if (unit is TransactionalUnitOfWork transactional)
        {
            transactional.BeginTransaction(drainToken);
        }
        else
        {
            unit.BeginTransaction();
        }
    }

    /// <summary>
    /// Whether a failure is the transaction's rather than a record's: abortable, retriable or of unknown outcome.
    /// Those retry with backoff and never count as a record's attempt; a refusal of the record's own output
    /// (<see cref="TransactionErrorKind.Rejected"/>) does count. Fenced and fatal failures stop the processor.
    /// </summary>
    public bool IsTransactionFailure(KafkaTransactionException e) =>
        e.Kind is TransactionErrorKind.Abortable or TransactionErrorKind.Retriable or TransactionErrorKind.OutcomeUnknown
        && (e.TransactionalId is null || e.TransactionalId == unit.TransactionalId); // not another unit the handler used

    /// <summary>
    /// The handler has returned: a ProduceAsync it did not await, still running, would go missing unseen if it then
    /// failed (nobody observes its exception), so returning before it finished is the handler's failure.
    /// </summary>
    /// <exception cref="InvalidOperationException">A ProduceAsync of the handler is still running.</exception>
    /// <exception cref="OperationCanceledException">One is, but the stop's ShutdownTimeout has run out: the batch aborts, and nobody is charged.</exception>
    public void ThrowIfWritesRunning(string handler, CancellationToken drainToken)
    {
        if (unit is ISerializingUnit { WritesInFlight: > 0 and var running })
        {
            drainToken.ThrowIfCancellationRequested();
            throw UnawaitedWrites(handler, running);
        }
    }

    /// <summary>What a handler that returned before its ProduceAsync calls finished fails with.</summary>
    public static InvalidOperationException UnawaitedWrites(string handler, int running) => new(
        $"The handler {handler} returned while {running} ProduceAsync call(s) it made were still running. Await every ProduceAsync before returning: " +
        "a write that failed after the handler returned would otherwise go missing from the transaction unseen.");

    /// <summary>
    /// Whether a failure under the open batch charges none of its records: a transaction failure (see
    /// <see cref="IsTransactionFailure"/>) while the batch is within TransactionTimeout; past it, the batch was too slow
    /// for one transaction, its own doing, unless the schema registry was what it waited for (unreachable, failing or
    /// too slow): an outage never counts toward poison, however long it lasts.
    /// </summary>
    public bool ChargesNoRecord(KafkaTransactionException e, bool batchOutlived) =>
        IsTransactionFailure(e) && (!batchOutlived || Serialization.SerdeFailureClassifier.IsRegistryOutage(e));
}
