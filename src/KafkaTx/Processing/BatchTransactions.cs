using System.Diagnostics;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Outcome = KafkaTx.Processing.ProcessorTelemetry.BatchOutcome;

namespace KafkaTx.Processing;

/// <summary>
/// The transactions of the processor's batches, on the loop's behalf: begins one with its <see cref="OpenBatch{TKey, TValue}"/>,
/// commits it with the offsets of the records handled, aborts it and has the consumer rewound, and decides what a failed
/// commit means: a transient failure retries, a refused output counts against its record, an unknown outcome is
/// settled, a fenced or fatal one stops the processor.
/// </summary>
/// <remarks>Used on the processor's thread only; awaits with ConfigureAwait(true) to stay there.</remarks>
internal sealed class BatchTransactions<TKey, TValue>(
    ITransactionalUnitOfWork unit,
    ProcessorUnitOfWork unitCalls,
    IServiceScopeFactory scopes,
    Type handlerType,
    Func<IConsumerGroupMetadata> groupMetadata,
    TimeProvider time,
    ProcessorStatus status,
    ProcessorTelemetry telemetry,
    RecordAttempts attempts,
    PoisonRecords poison,
    BatchSchedule schedule,
    Rewinder rewinder) : IOpenBatchControl
{
    private OpenBatch<TKey, TValue>? _batch;  // the open transaction's; null when none is open
    private int _transientFailuresInARow;     // transaction failures no record caused: they back off, never count as attempts
    private readonly List<RecordKey> _handled = []; // each batch's in turn: one list for the processor's life
    private readonly OffsetsSender _offsets = new(unit, groupMetadata, schedule, rewinder, telemetry, time);

    /// <summary>The open transaction's batch, or null.</summary>
    public OpenBatch<TKey, TValue>? Batch => _batch;

    bool IOpenBatchControl.IsOpen => _batch is not null;

    bool IOpenBatchControl.IsRunning => status.State is ProcessorState.Running;

    /// <inheritdoc/>
    void IOpenBatchControl.Leaving(IEnumerable<TopicPartition> partitions)
    {
        // One record at a time: nothing is ever paused.
    }

    /// <param name="cancellationToken">The stop: initializing or resuming an abort gives up when it is cancelled.</param>
    /// <param name="drainToken">The transaction's own: a Produce waiting for room in a full queue stops when it is cancelled.</param>
    public async Task<OpenBatch<TKey, TValue>> BeginAsync(CancellationToken cancellationToken, CancellationToken drainToken)
    {
        Debug.Assert(_batch is null && !rewinder.IsPending, "a batch begins only after the last one ended and the consumer was rewound");
        if (unit.State == TransactionState.Aborting)
        {
            await unit.AbortAsync(cancellationToken).ConfigureAwait(true); // resume an abort that timed out
        }

        if (unit.State == TransactionState.Uninitialized)
        {
            await unitCalls.InitializeAsync(cancellationToken).ConfigureAwait(true); // the unit replaced its producer
        }

        // Current in this flow only, so that the unit's transaction span is the batch's child.
        var activity = telemetry.StartBatch();
        try
        {
            try
            {
                unitCalls.BeginTransaction(drainToken);
            }
            catch (KafkaTransactionException) when (unit.State == TransactionState.Uninitialized)
            {
                // The producer had hit a fatal error in the background and the unit replaced it: initialize and go on.
                await unitCalls.InitializeAsync(cancellationToken).ConfigureAwait(true);
                unitCalls.BeginTransaction(drainToken);
            }
        }
        catch
        {
            ProcessorTelemetry.EndBatch(activity, 0, Outcome.NotStarted);
            throw;
        }

        try
        {
            _batch = OpenBatch<TKey, TValue>.Open(scopes, time.GetTimestamp(), activity, _handled);
        }
        catch
        {
            // No scope (the application's provider is being disposed, say): the transaction just begun holds
            // nothing; end it here, since without a batch the stop has nothing to end.
            await AbortQuietlyAsync().ConfigureAwait(true);
            ProcessorTelemetry.EndBatch(activity, 0, Outcome.NotStarted);
            throw;
        }

        _batch.ResolveHandler(handlerType); // should it throw, the batch is open all the same: the stop ends it
        return _batch;
    }

    /// <summary>A revoke's commit: it runs inside the rebalance callback, so a failure retries without backing off.</summary>
    Task IOpenBatchControl.CommitAsync(CancellationToken cancellationToken) => CommitAsync(backoff: false, cancellationToken);

    /// <summary>Commits the open batch with the offsets of its handled records (see <see cref="OpenBatch{TKey, TValue}.NextOffsets"/>).</summary>
    /// <param name="backoff">
    /// Whether a failed commit backs off before the next attempt (the loop's everyday commit). False inside a rebalance
    /// callback or the commit on stop: the backoff (up to Retry.MaxDelay) would hold the rebalance, max.poll.interval.ms
    /// or the graceful stop; the batch is aborted and rewound at once, and the next attempt comes with the next batch.
    /// </param>
    /// <param name="cancellationToken">The commit's token.</param>
    public async Task CommitAsync(bool backoff, CancellationToken cancellationToken)
    {
        var batch = _batch!;
        var offsets = batch.NextOffsets();
        _offsets.Reset();
        try
        {
            if (offsets.Count > 0)
            {
                await _offsets.SendAsync(batch, offsets, cancellationToken).ConfigureAwait(true);
            }

            await unit.CommitAsync(cancellationToken).ConfigureAwait(true);
        }
        catch (KafkaTransactionException e)
        {
            await HandleCommitFailureAsync(e, backoff, cancellationToken).ConfigureAwait(true);
            return;
        }

        _transientFailuresInARow = 0;
        attempts.Committed(batch.Handled);
        rewinder.Committed(offsets);
        telemetry.BatchCommitted(batch.Count);
        await EndAsync(Outcome.Committed).ConfigureAwait(true);
    }

    /// <summary>Aborts the open batch, if any, and has the consumer rewound to the committed positions.</summary>
    public async Task AbortAndRewindAsync(string reason)
    {
        if (_batch is not null && unit.State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            telemetry.Aborting(reason);
            await AbortQuietlyAsync().ConfigureAwait(true);
        }

        await EndAsync(Outcome.Aborted).ConfigureAwait(true);
        rewinder.Require();
    }

    /// <summary>
    /// The transaction failed for a reason no record caused (abortable or retriable: a coordinator that moved, a
    /// request that timed out): abort, rewind and back off, without counting an attempt against any record, so that
    /// nothing is dead-lettered or skipped for it. The backoff grows with the failures in a row.
    /// </summary>
    /// <param name="failure">The transaction's failure.</param>
    /// <param name="backoff">False inside a rebalance callback or the commit on stop: abort and rewind without waiting.</param>
    /// <param name="cancellationToken">The backoff's token.</param>
    public async Task RetryAsync(KafkaTransactionException failure, bool backoff, CancellationToken cancellationToken)
    {
        _transientFailuresInARow++;
        if (Serialization.SerdeFailureClassifier.IsRegistryOutage(failure))
        {
            telemetry.RegistryUnavailable(_batch?.Count ?? 0, failure);
        }
        else
        {
            telemetry.CommitFailed(failure.Kind, _batch?.Count ?? 0, failure);
        }

        await AbortAndRewindAsync($"the transaction failed ({failure.Kind}: {failure.Error.Code})").ConfigureAwait(true);
        if (backoff)
        {
            await schedule.BackoffAsync(_transientFailuresInARow, cancellationToken).ConfigureAwait(true);
        }
    }

    /// <summary>The unit of work can no longer be used: the batch ends, and the processor stops fenced or faulted.</summary>
    public async Task StopForUnitFailureAsync(Exception failure)
    {
        var fenced = status.IsFencing(failure);
        await EndAsync(fenced ? Outcome.Fenced : Outcome.Faulted).ConfigureAwait(true);
        status.Fail(failure, fenced);
    }

    /// <summary>
    /// Ends the open batch as the processor stops. It commits only while the drain allows it (the stop's
    /// ShutdownTimeout has not run out) and with the offsets of the records whose handlers completed; a commit cut off
    /// by the drain is settled; anything else is aborted.
    /// </summary>
    public async Task FinishOnShutdownAsync(CancellationToken drainToken)
    {
        if (_batch is null)
        {
            return;
        }

        if (unit.State == TransactionState.InTransaction && !drainToken.IsCancellationRequested)
        {
            try
            {
                await CommitAsync(backoff: false, drainToken).ConfigureAwait(true); // a failure must not hold the stop
            }
            catch (Exception e) when (e is OperationCanceledException or KafkaException or InvalidOperationException)
            {
                telemetry.ShutdownCommitFailed(e);
            }
        }

        if (_batch is not null && unit.State == TransactionState.Committing)
        {
            // The drain ran out while the commit was in flight: settle it now (a resumed commit, or a new producer's
            // InitTransactions), so that no transaction is left hanging for the partitions' next owner.
            await unitCalls.SettlePendingAsync(CancellationToken.None).ConfigureAwait(true);
            await EndAsync(Outcome.OutcomeUnknown).ConfigureAwait(true);
        }

        if (_batch is not null && unit.State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            await AbortQuietlyAsync().ConfigureAwait(true);
        }

        await EndAsync(Outcome.Aborted).ConfigureAwait(true);
    }

    private async Task HandleCommitFailureAsync(KafkaTransactionException failure, bool backoff, CancellationToken cancellationToken)
    {
        if (failure.Kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal || unit.State is TransactionState.Fenced or TransactionState.Faulted)
        {
            await StopForUnitFailureAsync(failure).ConfigureAwait(true);
            return;
        }

        if (failure.Kind == TransactionErrorKind.OutcomeUnknown)
        {
            // Whether these offsets committed is unknown: the rewind asks the group for them. A commit still pending
            // (it timed out) is settled by a new producer, whose InitTransactions completes or aborts it.
            telemetry.CommitOutcomeUnknown(_batch!.Count, failure);
            rewinder.CommitOutcomeUnknown(_batch.Partitions());
            if (unit.State == TransactionState.Committing)
            {
                await unit.ResetAsync(CancellationToken.None).ConfigureAwait(true);
            }

            // Before the group is asked: the new producer's InitTransactions returns only once the coordinator has
            // finished the pending transaction, markers included, so the offsets the rewind reads are final even on
            // brokers without KIP-447's stable offset fetch.
            await unitCalls.SettlePendingAsync(cancellationToken).ConfigureAwait(true);
            await EndAsync(Outcome.OutcomeUnknown).ConfigureAwait(true);
            rewinder.Require();
            return;
        }

        // An unreachable group coordinator is never the batch's doing, however long the batch waited for it; a batch
        // that outlived its time before even sending its offsets is, as is one whose handler did not await its
        // ProduceAsync (a bug that would otherwise abort the batch for ever): charged, so the record is isolated.
        var notTheBatchs = _offsets.CoordinatorFailed
            || (!_offsets.BatchTooSlow && !schedule.Outlived(_batch) && !UnitOfWork.TransactionErrors.IsWritesNotFinished(failure));
        if (failure.Kind != TransactionErrorKind.Rejected && notTheBatchs)
        {
            await RetryAsync(failure, backoff, cancellationToken).ConfigureAwait(true);
            return;
        }

        // Kafka refused a record this batch wrote: the fault of the record whose handler wrote it.
        if (unit.State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            await AbortQuietlyAsync().ConfigureAwait(true);
        }

        IReadOnlyList<RecordKey> handled = _batch?.Handled ?? []; // an abort that stopped the processor ended the batch
        if (_batch?.OnlyDeadLetterTopic is { } deadLetterTopic)
        {
            // Writing the poison record to the dead-letter topic failed: retrying would loop for ever.
            await EndAsync(Outcome.Aborted).ConfigureAwait(true);
            telemetry.Failed(failure);
            status.Stop(ProcessorState.Faulted, poison.DeadLetterWriteFailed(deadLetterTopic, failure));
            return;
        }

        var backoffAttempts = 1;
        if (handled.Count == 1)
        {
            backoffAttempts = attempts.Failed(handled[0], failure);
        }
        else
        {
            attempts.Isolate(handled); // which record's output was refused is not known: commit them one by one to find it
        }

        telemetry.CommitFailed(failure.Kind, handled.Count, failure);
        await EndAsync(Outcome.Aborted).ConfigureAwait(true);
        rewinder.Require();
        if (backoff)
        {
            await schedule.BackoffAsync(backoffAttempts, cancellationToken).ConfigureAwait(true);
        }
    }

    private async Task AbortQuietlyAsync()
    {
        try
        {
            await unit.AbortAsync(CancellationToken.None).ConfigureAwait(true);
        }
        catch (KafkaTransactionException e) when (e.Kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal)
        {
            await StopForUnitFailureAsync(e).ConfigureAwait(true);
        }
        catch (KafkaTransactionException e)
        {
            // Still Aborting: the next BeginAsync resumes the abort. Nothing of it is visible meanwhile.
            telemetry.AbortIncomplete(e);
        }
    }

    /// <summary>Ends the open batch, if any: its span with the outcome, and its scope.</summary>
    private async Task EndAsync(string outcome)
    {
        if (_batch is not { } batch)
        {
            return;
        }

        ProcessorTelemetry.EndBatch(batch.Activity, batch.Count, outcome);
        _batch = null;
        await batch.DisposeAsync().ConfigureAwait(true);
    }
}
