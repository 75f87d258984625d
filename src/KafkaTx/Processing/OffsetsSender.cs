using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// Sends a batch's offsets to its transaction, in time, and says whose doing a failure was. It gives up at the batch's
/// offsets deadline (<see cref="BatchSchedule.OffsetsDeadline"/>), so that the abort that follows comes before the
/// broker's transaction timeout: an unreachable group coordinator would otherwise keep the transaction open until the
/// broker aborts it and fences the producer. A failure because the coordinator did not answer starts the
/// <see cref="CoordinatorHold"/> and is never the batch's doing; a batch that reached the deadline before its offsets
/// were even sent is its own (a handler too slow), and is counted against its records.
/// </summary>
/// <remarks>Used on the processor's thread only.</remarks>
internal sealed class OffsetsSender(
    ITransactionalUnitOfWork unit,
    Func<IConsumerGroupMetadata> groupMetadata,
    BatchSchedule schedule,
    Rewinder rewinder,
    ProcessorTelemetry telemetry,
    TimeProvider time)
{
    /// <summary>Whether the last send failed because the group coordinator did not answer.</summary>
    public bool CoordinatorFailed { get; private set; }

    /// <summary>Whether the last batch reached its offsets deadline before they were sent: its handlers were too slow.</summary>
    public bool BatchTooSlow { get; private set; }

    /// <summary>A new commit begins: what the last one found no longer holds.</summary>
    public void Reset() => (CoordinatorFailed, BatchTooSlow) = (false, false);

    /// <summary>Sends the offsets with the group metadata of the moment (never cached across a rebalance).</summary>
    public async Task SendAsync<TKey, TValue>(OpenBatch<TKey, TValue> batch, List<TopicPartitionOffset> offsets, CancellationToken cancellationToken)
    {
        var left = schedule.OffsetsDeadline(batch);
        if (left <= TimeSpan.Zero)
        {
            BatchTooSlow = true;
            throw new KafkaTransactionException(
                TransactionErrorKind.Abortable,
                new Error(ErrorCode.Local_TimedOut, "the batch outlived its offsets deadline"),
                $"A batch of {batch.Count} record(s) took {time.GetElapsedTime(batch.StartedAt).TotalMilliseconds:F0} ms, three quarters of the transaction timeout or more, before its offsets could be sent: it is aborted, and counted against its records (their handlers are too slow for one transaction).",
                unit.State);
        }

        using var deadline = new CancellationTokenSource(left, time);
        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            await unit.SendOffsetsAsync(offsets, groupMetadata(), either.Token).ConfigureAwait(true);
        }
        catch (KafkaTransactionException e) when (e.InnerException is KafkaException && CoordinatorHold.MeansUnreachable(e.Error.Code))
        {
            // librdkafka's own retries ran out first (COORDINATOR_NOT_AVAILABLE, a request timed out): the same outage.
            // Not the unit's own refusal of an expired transaction (no client error inside): that one is the batch's.
            CoordinatorFailed = true;
            rewinder.GroupCoordinatorUnreachable();
            throw;
        }
        catch (OperationCanceledException e) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            CoordinatorFailed = true;
            telemetry.OffsetsNotSentInTime(batch.Count, time.GetElapsedTime(batch.StartedAt));
            rewinder.GroupCoordinatorUnreachable(); // the abort's rewind waits for it to answer: no batch runs to be aborted again
            throw new KafkaTransactionException(
                TransactionErrorKind.Retriable,
                new Error(ErrorCode.Local_TimedOut, "SendOffsetsToTransaction did not succeed before the offsets deadline"),
                $"The offsets of a batch of {batch.Count} record(s) could not be sent within three quarters of the transaction timeout (the group coordinator unreachable?): the transaction is aborted before the broker would abort it, and the batch runs again once the coordinator answers.",
                unit.State,
                e);
        }
    }
}
