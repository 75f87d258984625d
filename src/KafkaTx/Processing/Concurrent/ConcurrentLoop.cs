using Confluent.Kafka;

namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// The loop's steps when <see cref="TransactionalProcessorOptions.MaxConcurrency"/> is above 1. Records are consumed
/// into per-lane queues (<see cref="LaneQueues"/>, bounded by MaxBufferedRecords: at the bound nothing is consumed
/// until a handler call completes), dispatched to at most MaxConcurrency concurrent handler calls
/// (<see cref="HandlerDispatch{TKey, TValue}"/>), and committed behind a barrier: when the batch is due, nothing new is
/// dispatched, the records below a dispatched record of the same partition are (so that every partition's handled
/// records are contiguous), the calls in flight finish, and only then are the offsets sent and the transaction
/// committed. Records buffered past the barrier wait for the next batch. A failure aborts the whole batch, rewinds
/// every partition and drops the buffer (the rewind reads it again); only the records that failed are charged.
/// </summary>
/// <remarks>Runs on the processor's thread (awaits with ConfigureAwait(true)); rebalance callbacks call it there too.</remarks>
internal sealed class ConcurrentLoop<TKey, TValue>(
    TransactionalProcessorOptions options,
    KafkaTransactionsOptions producer,
    BatchTransactions<TKey, TValue> transactions,
    ProcessorStatus status,
    RecordAttempts attempts,
    BatchSchedule schedule,
    Rewinder rewinder,
    ProcessorTelemetry telemetry,
    HandlerDispatch<TKey, TValue> dispatch,
    CommitBarrier<TKey, TValue> barrier,
    BatchFailure<TKey, TValue> failure,
    LaneQueues buffer,
    TimeProvider time) : IOpenBatchControl
{
    private const int MostReadPerStep = 64; // records dispatched as they are consumed, before the step's own work comes round again
    private static readonly TimeSpan BusyPoll = TimeSpan.FromMilliseconds(10); // how soon new records are looked for while handlers run

    // Lost partitions may be owned by another member already, whose reads of their offsets wait for this transaction
    // to end: cancelled calls get a short while, not ShutdownTimeout.
    private static readonly TimeSpan CancelledCallsOnLoss = TimeSpan.FromSeconds(1);

    private readonly AssignmentPause _pause = new(telemetry);

    private bool Broken => dispatch.Broken;

    bool IOpenBatchControl.IsOpen => transactions.Batch is not null || dispatch.InFlight.Count > 0 || buffer.Count > 0;

    bool IOpenBatchControl.IsRunning => status.State is ProcessorState.Running;

    /// <summary>One step: collect completions, fail or commit the batch when due, dispatch, consume (several records while they dispatch at once).</summary>
    public async Task StepAsync(IConsumer<byte[]?, byte[]?> consumer, CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var now = time.GetTimestamp();
        telemetry.RefreshLag(consumer, now);
        dispatch.Collect(transactions.Batch);
        if (Broken)
        {
            await failure.FailAsync(backoff: true, stoppingToken).ConfigureAwait(true);
            return;
        }

        if (rewinder.IsPending)
        {
            DropBuffer();
            if (!rewinder.TryRewind(consumer))
            {
                await rewinder.WaitToRetryAsync(consumer, time, stoppingToken).ConfigureAwait(true);
                return;
            }
        }

        if (transactions.Batch is { } batch && IsDue(batch, now))
        {
            await CommitAtBarrierAsync(batch, drainToken).ConfigureAwait(true);
            return;
        }

        await DispatchAsync(stoppingToken, drainToken).ConfigureAwait(true);
        if (Broken || status.HasFailed || (transactions.Batch is { } open && IsDue(open, now)))
        {
            return;
        }

        if (buffer.Count >= options.MaxBufferedRecords)
        {
            // Full: the assigned partitions are paused until a handler call completes, so memory stays flat whatever
            // the lag; Consume is still called, so that rebalances are served and max.poll.interval.ms is not exceeded.
            _pause.Pause(consumer);
            await dispatch.InFlight.WaitAsync(schedule.ConsumeTimeout(transactions.Batch, now)).ConfigureAwait(true);
        }
        else if (_pause.IsPaused && buffer.Count <= options.MaxBufferedRecords / 2)
        {
            // Half empty, not at the first free place: librdkafka drops a paused partition's prefetched records, so
            // pausing and resuming at every record would cost a fetch round trip each.
            _pause.Resume(consumer);
        }

        await ConsumeAsync(consumer, now, stoppingToken, drainToken).ConfigureAwait(true);
    }

    /// <summary>
    /// Ends the open batch as the processor stops: nothing new is dispatched (the holes below dispatched records
    /// excepted), the calls in flight finish (their token is cancelled only when ShutdownTimeout runs out; a call that
    /// ignores it is abandoned ShutdownTimeout later); then the batch is complete and
    /// <see cref="BatchTransactions{TKey, TValue}.FinishOnShutdownAsync"/> commits it, or it is aborted, also when the
    /// barrier throws.
    /// </summary>
    public async Task FinishAsync(CancellationToken drainToken)
    {
        var complete = false;
        try
        {
            complete = (transactions.Batch is null && dispatch.InFlight.Count == 0)
                || (!status.HasFailed && await barrier.WaitAsync(TimeSpan.MaxValue, chargeOverrun: false, "the processor stopped", drainToken).ConfigureAwait(true) && !Broken);
        }
        finally
        {
            try
            {
                if (!complete)
                {
                    await dispatch.StopCallsAsync(transactions.Batch, "the processor stopped").ConfigureAwait(true);
                    await transactions.AbortAndRewindAsync("the processor stopped before every handler call of the batch completed").ConfigureAwait(true);
                }
            }
            finally
            {
                dispatch.BatchEnded();
                DropBuffer();
            }
        }
    }

    /// <summary>A revoke: the calls in flight finish (bounded by ShutdownTimeout), then the batch commits, or aborts.</summary>
    async Task IOpenBatchControl.CommitAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (transactions.Batch is { } batch)
            {
                var bound = BoundOf(batch) < options.ShutdownTimeout ? BoundOf(batch) : options.ShutdownTimeout;
                if (await barrier.WaitAsync(bound, chargeOverrun: false, "the partitions were revoked", CancellationToken.None).ConfigureAwait(true))
                {
                    await transactions.CommitAsync(backoff: false, cancellationToken).ConfigureAwait(true); // inside the callback
                    dispatch.BatchEnded();
                }
                else
                {
                    await failure.FailAsync(backoff: false, cancellationToken).ConfigureAwait(true);
                }
            }
        }
        finally
        {
            // The buffered records of the partitions kept are read again from what just committed.
            DropBuffer();
            rewinder.Require();
        }
    }

    /// <inheritdoc/>
    void IOpenBatchControl.Leaving(IEnumerable<TopicPartition> partitions) => _pause.Leaving(partitions);

    /// <summary>
    /// A loss (or a failed commit on revoke): cancel the calls, wait for them (a call ignoring its token at most
    /// <see cref="CancelledCallsOnLoss"/>: it is abandoned), abort, rewind.
    /// </summary>
    async Task IOpenBatchControl.AbortAndRewindAsync(string reason)
    {
        try
        {
            var bound = options.ShutdownTimeout < CancelledCallsOnLoss ? options.ShutdownTimeout : CancelledCallsOnLoss;
            await dispatch.StopCallsAsync(transactions.Batch, reason, bound).ConfigureAwait(true);
            await transactions.AbortAndRewindAsync(reason).ConfigureAwait(true);
        }
        finally
        {
            dispatch.BatchEnded();
            DropBuffer();
        }
    }

    private async Task ConsumeAsync(IConsumer<byte[]?, byte[]?> consumer, long now, CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var busy = dispatch.InFlight.Count > 0 || buffer.Count > 0;
        var timeout = busy ? TimeSpan.Zero : schedule.ConsumeTimeout(transactions.Batch, now);
        for (var taken = 0; ; taken++)
        {
            ConsumeResult<byte[]?, byte[]?>? result;
            try
            {
                result = consumer.Consume(timeout);
            }
            catch (ConsumeException e) when (!e.Error.IsFatal)
            {
                telemetry.ConsumerError(e.Error); // as in the sequential loop: librdkafka recovers on its own
                await Task.Delay(BatchSchedule.IdlePoll, time, stoppingToken).ConfigureAwait(true);
                return;
            }

            if (result is not null)
            {
                rewinder.Consumed(result);
            }

            // As in the sequential loop: a stop takes nothing new, and a record read after a callback aborted is read again.
            if (status.HasFailed || stoppingToken.IsCancellationRequested || rewinder.IsPending)
            {
                return;
            }

            if (result is not { IsPartitionEOF: false })
            {
                if (taken == 0 && dispatch.InFlight.Count > 0)
                {
                    var wait = schedule.ConsumeTimeout(transactions.Batch, now);
                    await dispatch.InFlight.WaitAsync(wait < BusyPoll ? wait : BusyPoll).ConfigureAwait(true);
                }

                return;
            }

            // While records dispatch as they come (their handlers complete at once, or slots are free), the step reads
            // on: the step's own work (clock, lag, completions, the commit check) is then shared by many records.
            var record = new BufferedRecord(result, LaneId.Of(options.Order, result));
            if (!DispatchAtOnce(record, drainToken))
            {
                buffer.Add(record);
                return;
            }

            if (taken == MostReadPerStep)
            {
                return;
            }

            timeout = TimeSpan.Zero;
        }
    }

    /// <summary>
    /// Dispatches a record as it is consumed, without queueing it, when nothing waits in the buffer, its lane has no
    /// record in flight, a slot is free and the batch is open and not due: the order is the buffer's all the same.
    /// </summary>
    private bool DispatchAtOnce(BufferedRecord record, CancellationToken drainToken)
    {
        if (buffer.Count > 0 || !dispatch.HasFreeSlot || Broken || transactions.Batch is not { } batch || !buffer.IsIdle(record.Lane))
        {
            return false;
        }

        var now = time.GetTimestamp(); // one clock read a record, as in the sequential loop: the commit check and the call's start
        if (IsDue(batch, now))
        {
            return false;
        }

        if (dispatch.Dispatch(batch, record, now, drainToken))
        {
            buffer.Hold(record.Lane); // its call is running: the lane's next records wait for its completion
        }

        return true;
    }

    private async Task DispatchAsync(CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var dispatchable = AbandonedCalls.Dispatchable(dispatch.InFlight, buffer); // null (any) unless a call was abandoned
        while (dispatch.HasFreeSlot && !stoppingToken.IsCancellationRequested && !Broken && !status.HasFailed && !IsFull())
        {
            if (!buffer.TryTake(dispatchable, out var record))
            {
                return;
            }

            // The batch's token, so that a Produce of an abandoned call waiting for room in a full queue stops too.
            var batch = transactions.Batch ?? await transactions.BeginAsync(stoppingToken, dispatch.BatchToken(drainToken)).ConfigureAwait(true);
            dispatch.Dispatch(batch, record, drainToken);
        }
    }

    private bool IsFull() =>
        dispatch.Dispatched >= Math.Min(options.MaxBatchSize, dispatch.BatchCap) || (dispatch.LastDispatched is { } last && attempts.IsIsolating(last));

    private bool IsDue(OpenBatch<TKey, TValue> batch, long now)
    {
        var age = time.GetElapsedTime(batch.StartedAt, now);
        if (IsFull() || age >= options.MaxBatchDuration)
        {
            return true;
        }

        if (age >= producer.TransactionTimeout / 2)
        {
            telemetry.CommittingEarly(age);
            return true;
        }

        return false;
    }

    private async Task CommitAtBarrierAsync(OpenBatch<TKey, TValue> batch, CancellationToken drainToken)
    {
        // A handler still running when the transaction nears its timeout is cancelled (and charged if it ran long).
        if (!await barrier.WaitAsync(BoundOf(batch), chargeOverrun: true, "its transaction neared its timeout", drainToken).ConfigureAwait(true))
        {
            return; // broken: the next step aborts the batch
        }

        await transactions.CommitAsync(backoff: true, drainToken).ConfigureAwait(true);
        dispatch.BatchEnded();
    }

    /// <summary>
    /// How long the barrier may still wait for the batch's calls: until a fifth of the transaction's timeout is left,
    /// so that offsets and the commit reach the coordinator before it aborts the transaction on its own.
    /// </summary>
    private TimeSpan BoundOf(OpenBatch<TKey, TValue> batch) =>
        producer.TransactionTimeout - (producer.TransactionTimeout / 5) - time.GetElapsedTime(batch.StartedAt);

    private void DropBuffer() => buffer.Clear(dispatch.InFlight.Lanes); // the lanes of calls running stay blocked
}
