namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// What a broken concurrent batch comes to (a handler failed, a call was cancelled, a poison record could not be
/// written or met the Stop policy): once every call has ended, the whole batch aborts, every partition is rewound and
/// the buffered records are dropped (the rewind reads them again). Only the records that failed are charged an attempt.
/// </summary>
/// <remarks>Runs on the processor's thread (or while it is blocked in a rebalance callback waiting for it).</remarks>
internal sealed class BatchFailure<TKey, TValue>(
    TransactionalProcessorOptions options,
    ITransactionalUnitOfWork unit,
    ProcessorUnitOfWork unitCalls,
    BatchTransactions<TKey, TValue> transactions,
    ProcessorStatus status,
    RecordAttempts attempts,
    BatchSchedule schedule,
    ProcessorTelemetry telemetry,
    HandlerDispatch<TKey, TValue> dispatch,
    LaneQueues buffer)
{
    /// <summary>
    /// Aborts the broken batch once its calls have ended (or, ignoring their cancellation past ShutdownTimeout, were
    /// abandoned): a unit failure stops the processor; a transaction failure retries without charging any record; else
    /// each record that failed is charged one attempt, and only those.
    /// </summary>
    public async Task FailAsync(bool backoff, CancellationToken cancellationToken)
    {
        var batch = transactions.Batch;
        await dispatch.StopCallsAsync(batch, "a call of its batch failed").ConfigureAwait(true);
        var failures = dispatch.Failures.ToList();
        var transactionFailure = dispatch.TransactionFailure ?? failures.Select(f => f.Error).OfType<KafkaTransactionException>()
            .FirstOrDefault(e => unitCalls.ChargesNoRecord(e, schedule.Outlived(batch)));
        var poisonStop = dispatch.PoisonStop;
        var backoffAttempts = 0;
        try
        {
            if (unit.State is TransactionState.Fenced or TransactionState.Faulted && (failures.Count > 0 || transactionFailure is not null))
            {
                await transactions.StopForUnitFailureAsync(transactionFailure ?? failures[0].Error).ConfigureAwait(true);
            }
            else if (poisonStop is not null)
            {
                await transactions.AbortAndRewindAsync("a poison record met the Stop policy").ConfigureAwait(true);
                status.Stop(ProcessorState.Faulted, poisonStop);
            }
            else if (transactionFailure is not null)
            {
                // The batch ends once, in the finally: ending it twice would double back a BatchCap an overrun halved.
                await transactions.RetryAsync(transactionFailure, backoff, cancellationToken).ConfigureAwait(true); // backs off itself, unless in a callback
            }
            else if (failures.Count == 0)
            {
                await transactions.AbortAndRewindAsync("a handler call was cancelled").ConfigureAwait(true);
            }
            else
            {
                foreach (var (record, error) in failures)
                {
                    var count = attempts.Failed(record.Key, error);
                    telemetry.HandlerFailed(record.Key, count, options.Retry.MaxAttempts, error);
                    backoffAttempts = Math.Max(backoffAttempts, count);
                }

                await transactions.AbortAndRewindAsync($"the handler failed on {failures[0].Record.Key}").ConfigureAwait(true);
            }
        }
        finally
        {
            dispatch.BatchEnded();
            DropBuffer();
        }

        if (backoff && backoffAttempts > 0)
        {
            await schedule.BackoffAsync(backoffAttempts, cancellationToken).ConfigureAwait(true);
        }
    }

    private void DropBuffer() => buffer.Clear(dispatch.InFlight.Lanes);
}
