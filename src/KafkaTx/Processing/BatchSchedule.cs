using KafkaTx.Retry;

namespace KafkaTx.Processing;

/// <summary>
/// When the open batch commits: after MaxBatchSize records or MaxBatchDuration, early when it nears the transaction
/// timeout, and record by record while the record at fault in a refused batch is being isolated; and how long the
/// processor backs off after a failed one.
/// </summary>
internal sealed class BatchSchedule(TransactionalProcessorOptions options, KafkaTransactionsOptions producer, TimeProvider time, ProcessorTelemetry telemetry)
{
    /// <summary>How long Consume waits when there is nothing to do: a stop request is noticed within it.</summary>
    public static readonly TimeSpan IdlePoll = TimeSpan.FromMilliseconds(100);

    /// <summary>How long the next Consume may wait: never past the open batch's deadline, and never longer than <see cref="IdlePoll"/>.</summary>
    public TimeSpan ConsumeTimeout<TKey, TValue>(OpenBatch<TKey, TValue>? batch, long now)
    {
        if (batch is null)
        {
            return IdlePoll;
        }

        var remaining = options.MaxBatchDuration - time.GetElapsedTime(batch.StartedAt, now);
        return remaining <= TimeSpan.Zero ? TimeSpan.Zero : remaining < IdlePoll ? remaining : IdlePoll;
    }

    /// <summary>Whether the open batch is due for its commit.</summary>
    public bool IsDue<TKey, TValue>(OpenBatch<TKey, TValue> batch, long now, RecordAttempts attempts)
    {
        var age = time.GetElapsedTime(batch.StartedAt, now);
        if (batch.Count >= options.MaxBatchSize || age >= options.MaxBatchDuration)
        {
            return true;
        }

        // A transaction approaching transaction.timeout.ms is committed early rather than left for the broker to abort.
        if (age >= producer.TransactionTimeout / 2)
        {
            telemetry.CommittingEarly(age);
            return true;
        }

        // While re-processing the records of a failed transaction, commit each on its own to find the one at fault.
        return batch.Count > 0 && attempts.IsIsolating(batch.Handled[^1]);
    }

    /// <summary>
    /// How long the open batch may still spend sending its offsets: until three quarters of TransactionTimeout after it
    /// began, so that the abort that follows a failed send has the last quarter. Sending is retried for
    /// SendOffsetsTimeout (half the timeout by default), which after a batch of up to MaxBatchDuration (below half)
    /// and a slow last handler could carry the transaction past the timeout: the broker would then abort it and fence
    /// the producer. That is what an unreachable group coordinator does to every send (issue 19).
    /// </summary>
    public TimeSpan OffsetsDeadline<TKey, TValue>(OpenBatch<TKey, TValue> batch) =>
        TimeSpan.FromTicks(producer.TransactionTimeout.Ticks / 4 * 3) - time.GetElapsedTime(batch.StartedAt);

    /// <summary>
    /// Whether the open transaction has outlived what TransactionTimeout leaves it (the unit refuses to commit in the
    /// last part, <see cref="UnitOfWork.OpenTransaction.CommitMargin(TimeSpan)"/>): then its failure is the batch's own
    /// doing (a handler too slow for one transaction), counted against its records like a handler failure, or it would
    /// loop for ever.
    /// </summary>
    public bool Outlived<TKey, TValue>(OpenBatch<TKey, TValue>? batch) =>
        batch is not null && time.GetElapsedTime(batch.StartedAt) >= producer.TransactionTimeout - UnitOfWork.OpenTransaction.CommitMargin(producer.TransactionTimeout);

    /// <summary>Waits before the next attempt: longer the more attempts failed (<see cref="TransactionalProcessorOptions.Retry"/>).</summary>
    public async Task BackoffAsync(int attempts, CancellationToken cancellationToken)
    {
        var delay = RetryBackoff.DelayBefore(options.Retry, attempts + 1, Random.Shared.NextDouble());
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, time, cancellationToken).ConfigureAwait(true);
        }
    }
}
