using System.Diagnostics;
using Confluent.Kafka;

namespace KafkaTx.Processing.Batching;

/// <summary>
/// The loop's steps with a batch handler (<see cref="ITransactionalBatchHandler{TKey, TValue}"/>). Records are read
/// into the next batch (<see cref="NextBatch"/>) with no transaction open; once it is due, a transaction begins, its
/// poison records meet their policy, the handler gets all the others in one call, and the transaction commits with the
/// offsets of every one of them. A call that throws aborts the batch and rewinds; <see cref="BatchBisection"/> then
/// decides how many records the next batches hold: the same batch once more (a transient failure passes), then
/// halves, down to one record, which alone is charged an attempt, so that only a poison record meets the policy.
/// </summary>
/// <remarks>
/// Runs on the processor's thread (awaits with ConfigureAwait(true)). Stops, rebalances, transaction failures and
/// TransactionTimeout are handled as for a record handler: the call gets the drain token (cancelled only when a
/// stop's ShutdownTimeout runs out, a cancelled call aborts its batch, and one ignoring its token is abandoned
/// ShutdownTimeout later, see <see cref="StoppingHandlerCall"/>); a transaction failure no record caused is
/// retried without charging anyone; the rebalance callbacks run inside Consume, which is never called while the
/// handler runs, so they find either no transaction or one a failure left open.
/// </remarks>
internal sealed class BatchHandlerLoop<TKey, TValue>(
    TransactionalProcessorOptions options,
    ITransactionalUnitOfWork unit,
    ProcessorUnitOfWork unitCalls,
    BatchTransactions<TKey, TValue> transactions,
    ProcessorStatus status,
    RecordAttempts attempts,
    PoisonRecords poison,
    BatchSchedule schedule,
    Rewinder rewinder,
    RecordDeserializer<TKey, TValue> deserializer,
    ProcessorTelemetry telemetry,
    StoppingHandlerCall stoppingCall,
    TimeProvider time) : IOpenBatchControl
{

    private readonly BatchBisection _bisection = new();
    private readonly NextBatch _next = new(options, attempts, time);

    bool IOpenBatchControl.IsOpen => transactions.Batch is not null;

    bool IOpenBatchControl.IsRunning => status.State is ProcessorState.Running;

    /// <summary>One step: rewind if due, hand the batch to the handler and commit it when it is due, else read one record.</summary>
    /// <param name="consumer">The processor's consumer.</param>
    /// <param name="stoppingToken">The stop: no new record is read, and no new batch begins, once it is cancelled.</param>
    /// <param name="drainToken">The handler's token and the commit's: cancelled only when the stop's ShutdownTimeout runs out.</param>
    public async Task StepAsync(IConsumer<byte[]?, byte[]?> consumer, CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var now = time.GetTimestamp();
        telemetry.RefreshLag(consumer, now);
        if (rewinder.IsPending)
        {
            _next.Clear(); // read past what is committed: the rewind reads them again
            if (!rewinder.TryRewind(consumer))
            {
                await rewinder.WaitToRetryAsync(consumer, time, stoppingToken).ConfigureAwait(true);
                return;
            }
        }

        if (_next.IsDue(now, _bisection.NextBatchSize(options.MaxBatchSize)))
        {
            if (!stoppingToken.IsCancellationRequested) // a stop begins no new batch: its records are the next owner's
            {
                await HandleAsync(_next.Take(), stoppingToken, drainToken).ConfigureAwait(true);
            }

            return;
        }

        ConsumeResult<byte[]?, byte[]?>? result;
        try
        {
            result = consumer.Consume(_next.ConsumeTimeout(now));
        }
        catch (ConsumeException e) when (!e.Error.IsFatal)
        {
            telemetry.ConsumerError(e.Error); // as in the record loop: librdkafka recovers on its own
            await Task.Delay(BatchSchedule.IdlePoll, time, stoppingToken).ConfigureAwait(true);
            return;
        }

        if (result is not null)
        {
            rewinder.Consumed(result);
        }

        // As in the record loop: a stop takes nothing new, and a record read after a callback aborted is read again.
        if (status.HasFailed || stoppingToken.IsCancellationRequested || rewinder.IsPending)
        {
            return;
        }

        if (result is { IsPartitionEOF: false })
        {
            _next.Add(result);
        }
    }

    /// <inheritdoc/>
    Task IOpenBatchControl.CommitAsync(CancellationToken cancellationToken) =>
        transactions.Batch is { } batch ? CommitAsync([.. batch.Handled], backoff: false, cancellationToken) : Task.CompletedTask; // a revoke: no backoff

    /// <inheritdoc/>
    async Task IOpenBatchControl.AbortAndRewindAsync(string reason)
    {
        await transactions.AbortAndRewindAsync(reason).ConfigureAwait(true);
        _next.Clear();
    }

    /// <inheritdoc/>
    void IOpenBatchControl.Leaving(IEnumerable<TopicPartition> partitions)
    {
        var gone = partitions as IReadOnlySet<TopicPartition> ?? partitions.ToHashSet();
        _next.Leaving(gone);
        _bisection.Forget(key => gone.Contains(key.TopicPartition));
    }

    /// <summary>Begins the batch's transaction, applies the poison policy, calls the handler, and commits, or fails the batch.</summary>
    private async Task HandleAsync(List<ConsumeResult<byte[]?, byte[]?>> records, CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var keys = records.ConvertAll(RecordKey.Of);
        var handed = new List<ConsumeResult<TKey, TValue>>(records.Count);
        var handedKeys = new List<RecordKey>(records.Count);
        var poisonous = new List<int>();
        List<(RecordKey Key, Exception Error)>? unreadable = null;
        for (var i = 0; i < records.Count; i++)
        {
            if (poison.IsPoison(attempts.Of(keys[i])))
            {
                poisonous.Add(i);
                continue;
            }

            try
            {
                handed.Add(await deserializer.DeserializeAsync(records[i], transactionStartedAt: null, drainToken).ConfigureAwait(true)); // no transaction is open yet
                handedKeys.Add(keys[i]);
            }
            catch (OperationCanceledException) when (drainToken.IsCancellationRequested)
            {
                // The stop's ShutdownTimeout ran out while a deserializer (the schema registry) kept the batch waiting:
                // nothing began, nothing is charged; the records are the next owner's, from the committed offsets.
                rewinder.Require();
                throw;
            }
            catch (Exception e)
            {
                (unreadable ??= []).Add((keys[i], e));
            }
        }

        if (unreadable is not null)
        {
            await UnreadableAsync(unreadable, stoppingToken).ConfigureAwait(true);
            return;
        }

        var batch = await transactions.BeginAsync(stoppingToken, drainToken).ConfigureAwait(true);
        telemetry.RecordTaken();
        foreach (var i in poisonous)
        {
            if (!await ApplyPoisonPolicyAsync(records[i], keys[i], batch, stoppingToken).ConfigureAwait(true))
            {
                return;
            }
        }

        if (handed.Count > 0 && !await CallAsync(batch, handed, handedKeys, stoppingToken, drainToken).ConfigureAwait(true))
        {
            return;
        }

        await CommitAsync(keys, backoff: true, drainToken).ConfigureAwait(true);
    }

    /// <summary>Commits the open batch; once it has committed, its records are no longer suspects of the bisection.</summary>
    /// <param name="keys">The batch's records (handled or dead-lettered).</param>
    /// <param name="backoff">Whether a failed commit backs off (not inside a rebalance callback).</param>
    /// <param name="cancellationToken">The commit's token.</param>
    private async Task CommitAsync(IReadOnlyList<RecordKey> keys, bool backoff, CancellationToken cancellationToken)
    {
        // The commit reports no outcome of its own (a failed one has been handled when it returns): the count says.
        var committedBefore = telemetry.CommittedTransactions;
        await transactions.CommitAsync(backoff, cancellationToken).ConfigureAwait(true);
        if (telemetry.CommittedTransactions != committedBefore)
        {
            _bisection.Committed(keys);
        }
    }

    /// <summary>Calls the handler with the batch's records; on success they join the batch.</summary>
    /// <returns>False when the call failed: the batch has ended (aborted, retried, or the processor stopped).</returns>
    private async Task<bool> CallAsync(OpenBatch<TKey, TValue> batch, List<ConsumeResult<TKey, TValue>> records, List<RecordKey> keys, CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var previous = Activity.Current;
        try
        {
            if (batch.Activity is { } span)
            {
                Activity.Current = span; // the records the handler writes carry the batch's trace
            }

            // Bounded once a stop has cancelled it: a call ignoring its token is abandoned rather than awaited for ever.
            await stoppingCall.AwaitAsync(batch.HandleBatchAsync(records, unit, drainToken), batch, keys[0], drainToken).ConfigureAwait(true);
            unitCalls.ThrowIfWritesRunning($"of {keys.Count} records from {keys[0]}", drainToken);
        }
        catch (OperationCanceledException) when (drainToken.IsCancellationRequested)
        {
            // The stop's ShutdownTimeout ran out while the handler was running (it ended cancelled, or was abandoned
            // ShutdownTimeout later): whatever it wrote must not commit.
            await transactions.AbortAndRewindAsync($"the batch handler's call on {keys.Count} records was cancelled when ShutdownTimeout ran out").ConfigureAwait(true);
            throw;
        }
        catch (KafkaTransactionException e) when (unitCalls.ChargesNoRecord(e, schedule.Outlived(transactions.Batch)))
        {
            // The transaction failed under the handler (the coordinator moved, say): no record's fault, nor the batch's.
            await transactions.RetryAsync(e, backoff: true, stoppingToken).ConfigureAwait(true);
            return false;
        }
        catch (Exception e)
        {
            if (unit.State is TransactionState.Fenced or TransactionState.Faulted)
            {
                await transactions.StopForUnitFailureAsync(e).ConfigureAwait(true);
                return false;
            }

            await FailedAsync(keys, e, stoppingToken).ConfigureAwait(true);
            return false;
        }
        finally
        {
            Activity.Current = previous;
        }

        foreach (var key in keys)
        {
            batch.AddHandled(key);
            telemetry.RecordHandled();
        }

        return true;
    }

    /// <summary>
    /// The handler threw on the batch: abort and rewind. A record that was alone in its batch is charged; else the
    /// bisection has made the next batches the same size once more, or halves, and nobody is charged yet.
    /// </summary>
    private async Task FailedAsync(List<RecordKey> keys, Exception error, CancellationToken stoppingToken)
    {
        if (_bisection.Failed(keys) is { } alone)
        {
            var count = attempts.Failed(alone, error);
            telemetry.HandlerFailed(alone, count, options.Retry.MaxAttempts, error);
            await transactions.AbortAndRewindAsync($"the batch handler failed on {alone}, alone in its batch").ConfigureAwait(true);
            await schedule.BackoffAsync(count, stoppingToken).ConfigureAwait(true);
            return;
        }

        var next = _bisection.NextBatchSize(options.MaxBatchSize);
        var wholeAgain = next >= keys.Count;
        await transactions.AbortAndRewindAsync(
            $"the batch handler failed on {keys.Count} records from {keys[0]} ({error.GetType().Name}: {error.Message}); "
            + (wholeAgain ? "trying the batch once more whole" : $"trying batches of at most {next} records to find the one at fault")).ConfigureAwait(true);
        if (wholeAgain)
        {
            await schedule.BackoffAsync(1, stoppingToken).ConfigureAwait(true); // a transient cause gets time to pass
        }
    }

    /// <summary>
    /// Records the deserializers refused: each is charged (it is its own fault, no bisection needed), and the batch is
    /// read again; no transaction was begun.
    /// </summary>
    private async Task UnreadableAsync(List<(RecordKey Key, Exception Error)> unreadable, CancellationToken stoppingToken)
    {
        if (unreadable.Select(u => u.Error).OfType<KafkaTransactionException>().FirstOrDefault(unitCalls.IsTransactionFailure) is { } registryDown)
        {
            await transactions.RetryAsync(registryDown, backoff: true, stoppingToken).ConfigureAwait(true); // the schema registry's failure: no record's attempt
            return;
        }

        var most = 0;
        foreach (var (key, error) in unreadable)
        {
            var count = attempts.Failed(key, error);
            telemetry.HandlerFailed(key, count, options.Retry.MaxAttempts, error);
            most = Math.Max(most, count);
        }

        rewinder.Require();
        await schedule.BackoffAsync(most, stoppingToken).ConfigureAwait(true);
    }

    /// <returns>False when the batch ended instead (a transaction failure, or the Stop policy).</returns>
    private async Task<bool> ApplyPoisonPolicyAsync(ConsumeResult<byte[]?, byte[]?> record, RecordKey key, OpenBatch<TKey, TValue> batch, CancellationToken stoppingToken)
    {
        Exception? stop;
        try
        {
            stop = poison.Apply(record, key, attempts.Of(key)!, batch);
        }
        catch (KafkaTransactionException e) when (unitCalls.IsTransactionFailure(e))
        {
            await transactions.RetryAsync(e, backoff: true, stoppingToken).ConfigureAwait(true);
            return false;
        }
        catch
        {
            // Anything else stops the processor. The records dead-lettered so far joined the batch before the records
            // of their partition the handler has not been given yet: the batch must abort, or the stop commits it past them.
            await transactions.AbortAndRewindAsync($"writing the poison record {key} failed").ConfigureAwait(true);
            throw;
        }

        if (stop is not null)
        {
            await transactions.AbortAndRewindAsync("a poison record met the Stop policy").ConfigureAwait(true);
            status.Stop(ProcessorState.Faulted, stop);
            return false;
        }

        return true;
    }
}
