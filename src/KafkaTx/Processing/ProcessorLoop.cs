using Confluent.Kafka;
using KafkaTx.Processing.Batching;
using KafkaTx.Processing.Concurrent;
using KafkaTx.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Processing;

/// <summary>
/// The consume-transform-produce loop: run, step, stop. Records are handled as they are consumed, inside a transaction
/// that commits after <see cref="TransactionalProcessorOptions.MaxBatchSize"/> records or
/// <see cref="TransactionalProcessorOptions.MaxBatchDuration"/>, together with the offsets of the records handled
/// (SendOffsetsToTransaction, KIP-447), so that outputs and progress commit or vanish together; after an abort the
/// consumer is rewound to the committed positions before anything else is consumed.
/// </summary>
/// <remarks>
/// The loop decides what happens next (rewind, consume, handle, commit, stop); <see cref="BatchTransactions{TKey, TValue}"/>
/// carries out the open batch's transaction (begin, send offsets, commit, abort) and what a failure of it means.
/// The processor's state is three values, each owned by one type: its status (<see cref="ProcessorStatus"/>: Starting,
/// Running, then Stopped, or Fenced or Faulted, a failure being also the loop's stop request), the open batch
/// (<see cref="BatchTransactions{TKey, TValue}.Batch"/>, null between transactions) and whether a rewind is due
/// (<see cref="Rewinder.IsPending"/>, never while a batch is open). The unit of work's state is read, never mirrored.
/// Everything runs on the processor's own thread (<see cref="ProcessorThread"/>): the loop awaits with
/// ConfigureAwait(true) to stay there; user code runs without its context. The rebalance callbacks run inside Consume,
/// on that thread too (see <see cref="RebalanceHandler"/>).
/// </remarks>
internal sealed class ProcessorLoop<TKey, TValue> : ITransactionalProcessor
{
    private readonly TransactionalProcessorOptions _options;
    private readonly KafkaTransactionsOptions _producerOptions;
    private readonly ITransactionalUnitOfWork _unit;
    private readonly TimeProvider _time;
    private readonly ProcessorTelemetry _telemetry;
    private readonly ProcessorStatus _status;
    private readonly RecordDeserializer<TKey, TValue> _deserializer;
    private readonly ProcessorUnitOfWork _unitCalls;
    private readonly RecordAttempts _attempts = new();
    private readonly PoisonRecords _poison;
    private readonly BatchSchedule _schedule;
    private readonly Rewinder _rewinder;
    private readonly BatchTransactions<TKey, TValue> _transactions;
    private readonly ProcessorConsumer _consumers; // creates, replaces (a static member refused on joining) and closes _consumer
    private readonly ConcurrentLoop<TKey, TValue>? _concurrent; // MaxConcurrency above 1 only: otherwise none of it exists
    private readonly BatchHandlerLoop<TKey, TValue>? _batchHandler; // an ITransactionalBatchHandler only (MaxConcurrency 1)
    private readonly StoppingHandlerCall _stoppingCall;
    private IConsumer<byte[]?, byte[]?>? _consumer;

    public ProcessorLoop(
        string name,
        TransactionalProcessorOptions options,
        KafkaTransactionsOptions producerOptions,
        ITransactionalUnitOfWork unit,
        IKafkaClientFactory clientFactory,
        IServiceScopeFactory scopes,
        Type handlerType,
        ILogger logger,
        TimeProvider time,
        KafkaTxInstrumentation instrumentation)
    {
        _options = options;
        _producerOptions = producerOptions;
        _unit = unit;
        _time = time;
        _telemetry = new ProcessorTelemetry(name, options.GroupId, unit.TransactionalId, instrumentation, logger, time);
        _status = new ProcessorStatus(unit, _telemetry);
        _unitCalls = new ProcessorUnitOfWork(unit, options, time, _telemetry);
        _deserializer = new RecordDeserializer<TKey, TValue>(options.Deserializers, producerOptions.TransactionTimeout, time);
        _poison = new PoisonRecords(options, unit, _telemetry);
        _schedule = new BatchSchedule(options, producerOptions, time, _telemetry);
        _rewinder = new Rewinder(_telemetry, time);
        _stoppingCall = new StoppingHandlerCall(options.ShutdownTimeout, _telemetry, time);
        _transactions = new BatchTransactions<TKey, TValue>(
            unit, _unitCalls, scopes, handlerType, () => _consumer!.ConsumerGroupMetadata, time, _status, _telemetry, _attempts, _poison, _schedule, _rewinder);
        _batchHandler = typeof(ITransactionalBatchHandler<TKey, TValue>).IsAssignableFrom(handlerType)
            ? new BatchHandlerLoop<TKey, TValue>(options, unit, _unitCalls, _transactions, _status, _attempts, _poison, _schedule, _rewinder, _deserializer, _telemetry, _stoppingCall, time)
            : null;
        _concurrent = options.MaxConcurrency > 1 && _batchHandler is null ? CreateConcurrentLoop(unit, handlerType) : null;
        var rebalance = new RebalanceHandler((IOpenBatchControl?)_batchHandler ?? (IOpenBatchControl?)_concurrent ?? _transactions, _rewinder, _attempts, _status, _telemetry);
        _consumers = new ProcessorConsumer(options, producerOptions, clientFactory, rebalance, _telemetry, time);
    }

    public string Name => _telemetry.Name;

    public ProcessorState State => _status.State;

    public Exception? Failure => _status.Failure;

    public long CommittedTransactions => _telemetry.CommittedTransactions;

    public long CommittedRecords => _telemetry.CommittedRecords;

    public string TransactionalId => _unit.TransactionalId;

    /// <summary>
    /// How long the oldest record taken and not committed yet has waited (work not made visible), or zero: a
    /// processor that commits every MaxBatchDuration keeps this below it; a stuck or failing one lets it grow.
    /// For health checks.
    /// </summary>
    public TimeSpan UncommittedFor => _telemetry.UncommittedFor;

    /// <inheritdoc cref="ConsumerLag.StalledFor"/>
    /// <remarks>For health checks: it reveals a processor stuck before its handler (a rewind that keeps failing, say).</remarks>
    public TimeSpan StalledFor => _telemetry.StalledFor;

    /// <inheritdoc cref="CoordinatorHold.HeldFor"/>
    public TimeSpan WaitingForGroupCoordinatorFor => _status.State == ProcessorState.Running ? _rewinder.Hold.HeldFor : TimeSpan.Zero; // a stopped processor waits for nothing

    /// <summary>
    /// Runs the loop on a thread of its own until <paramref name="stoppingToken"/> is cancelled or the processor stops
    /// on a failure. Stopping takes no new record, lets the handler in flight finish (its token is cancelled only when
    /// <see cref="TransactionalProcessorOptions.ShutdownTimeout"/> runs out), and commits exactly the records whose
    /// handlers completed; a handler that was cancelled or failed makes the open transaction abort instead.
    /// </summary>
    public Task RunAsync(CancellationToken stoppingToken) =>
        ProcessorThread.RunAsync($"KafkaTx processor {Name}", () => RunLoopAsync(stoppingToken));

    private async Task RunLoopAsync(CancellationToken stoppingToken)
    {
        using var drain = new StopDrain(_options.ShutdownTimeout, _time, stoppingToken);
        _status.Starting();
        using var lagRegistration = _telemetry.ObserveLag();
        using var concurrencyRegistration = _telemetry.ObserveConcurrencyGauges();
        try
        {
            await _unitCalls.InitializeAsync(stoppingToken).ConfigureAwait(true);
            _consumer = _consumers.Subscribe();
            _status.Running();
            _telemetry.Started(_options.Topics, _options.GroupId!);
            while (!_status.HasFailed && !stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await StepAsync(stoppingToken, drain.Token).ConfigureAwait(true);
                }
                catch (ConsumeException e) when (ProcessorConsumer.CanJoinAgain(e, _consumer!, _transactions.Batch is not null))
                {
                    _consumer = await _consumers.JoinAgainAsync(_consumer!, stoppingToken).ConfigureAwait(true);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping: ShutdownAsync finishes the open transaction (it aborts it if the drain ran out).
        }
        catch (Exception e) when (!_status.HasFailed)
        {
            _status.Fail(e, _status.IsFencing(e)); // fencing can surface anywhere (librdkafka may learn of it in the background and refuse BeginTransaction)
        }
        finally
        {
            await ShutdownAsync(drain.Token).ConfigureAwait(true);
        }
    }

    /// <summary>One step: rewind if due, consume at most one record, handle it, commit when due.</summary>
    /// <param name="stoppingToken">The stop: no new record is taken once it is cancelled.</param>
    /// <param name="drainToken">The handler's token and the commit's: cancelled only when the stop's ShutdownTimeout runs out.</param>
    private async Task StepAsync(CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var consumer = _consumer!;
        if (_batchHandler is not null || _concurrent is not null)
        {
            // A batch handler's steps, or concurrent handling's; the rest of this method is one record at a time.
            await (_batchHandler?.StepAsync(consumer, stoppingToken, drainToken) ?? _concurrent!.StepAsync(consumer, stoppingToken, drainToken)).ConfigureAwait(true);
            return;
        }

        var now = _time.GetTimestamp(); // one clock read a step: the lag, the poll timeout, the commit check (a record late at most)
        _telemetry.RefreshLag(consumer, now);
        if (_rewinder.IsPending && !_rewinder.TryRewind(consumer))
        {
            await _rewinder.WaitToRetryAsync(consumer, _time, stoppingToken).ConfigureAwait(true);
            return;
        }

        ConsumeResult<byte[]?, byte[]?>? result;
        try
        {
            result = consumer.Consume(_schedule.ConsumeTimeout(_transactions.Batch, now));
        }
        catch (ConsumeException e) when (!e.Error.IsFatal)
        {
            // Not fatal (a subscribed topic that does not exist yet, a broker gone for a while): librdkafka recovers
            // on its own. The open transaction, if any, stays open and commits on schedule.
            _telemetry.ConsumerError(e.Error);
            await Task.Delay(BatchSchedule.IdlePoll, _time, stoppingToken).ConfigureAwait(true);
            return;
        }

        if (result is not null)
        {
            _rewinder.Consumed(result);
        }

        // Stopping takes no new record: it is left for whoever owns the partition next. After a rebalance callback
        // aborted the transaction while Consume ran, the record may lie past aborted ones: the rewind reads it again.
        if (_status.HasFailed || stoppingToken.IsCancellationRequested || _rewinder.IsPending)
        {
            return;
        }

        if (result is not null && !result.IsPartitionEOF)
        {
            await ProcessAsync(result, stoppingToken, drainToken).ConfigureAwait(true);
        }

        if (_transactions.Batch is { } batch && !_status.HasFailed && _schedule.IsDue(batch, now, _attempts))
        {
            await _transactions.CommitAsync(backoff: true, drainToken).ConfigureAwait(true);
        }
    }

    private async Task ProcessAsync(ConsumeResult<byte[]?, byte[]?> result, CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var key = RecordKey.Of(result);
        var batch = _transactions.Batch ?? await _transactions.BeginAsync(stoppingToken, drainToken).ConfigureAwait(true);
        _telemetry.RecordTaken();
        var failure = _attempts.Of(key);
        if (_poison.IsPoison(failure))
        {
            await ApplyPoisonPolicyAsync(result, key, failure!, batch, stoppingToken).ConfigureAwait(true);
            return;
        }

        using var recordActivity = _telemetry.StartRecord(result, batch.Activity);
        try
        {
            var record = await _deserializer.DeserializeAsync(result, batch.StartedAt, drainToken).ConfigureAwait(true);
            await _stoppingCall.AwaitAsync(batch.HandleAsync(record, _unit, drainToken), batch, key, drainToken).ConfigureAwait(true);
            _unitCalls.ThrowIfWritesRunning($"of {key}", drainToken);
            batch.AddHandled(key);
            _telemetry.RecordHandled();
        }
        catch (OperationCanceledException e) when (drainToken.IsCancellationRequested)
        {
            // The stop's ShutdownTimeout ran out while the handler was running (it ended cancelled, or was abandoned
            // ShutdownTimeout later): whatever it wrote must not commit.
            ProcessorTelemetry.RecordFailed(recordActivity, e);
            await _transactions.AbortAndRewindAsync($"the handler of {key} was cancelled when ShutdownTimeout ran out").ConfigureAwait(true);
            throw;
        }
        catch (KafkaTransactionException e) when (_unitCalls.ChargesNoRecord(e, _schedule.Outlived(_transactions.Batch)))
        {
            // The transaction failed under the handler (the coordinator moved, say): not the record's fault.
            ProcessorTelemetry.RecordFailed(recordActivity, e);
            await _transactions.RetryAsync(e, backoff: true, stoppingToken).ConfigureAwait(true);
        }
        catch (Exception e)
        {
            if (_unit.State is TransactionState.Fenced or TransactionState.Faulted)
            {
                await _transactions.StopForUnitFailureAsync(e).ConfigureAwait(true);
                return;
            }

            var attempts = _attempts.Failed(key, e);
            ProcessorTelemetry.RecordFailed(recordActivity, e);
            _telemetry.HandlerFailed(key, attempts, _options.Retry.MaxAttempts, e);
            await _transactions.AbortAndRewindAsync($"the handler failed on {key}").ConfigureAwait(true);
            await _schedule.BackoffAsync(attempts, stoppingToken).ConfigureAwait(true);
        }
    }

    private async Task ApplyPoisonPolicyAsync(ConsumeResult<byte[]?, byte[]?> result, RecordKey key, RecordFailure failure, OpenBatch<TKey, TValue> batch, CancellationToken stoppingToken)
    {
        Exception? stop;
        try
        {
            stop = _poison.Apply(result, key, failure, batch);
        }
        catch (KafkaTransactionException e) when (_unitCalls.IsTransactionFailure(e))
        {
            await _transactions.RetryAsync(e, backoff: true, stoppingToken).ConfigureAwait(true);
            return;
        }

        if (stop is not null)
        {
            await _transactions.AbortAndRewindAsync("a poison record met the Stop policy").ConfigureAwait(true);
            _status.Stop(ProcessorState.Faulted, stop);
        }
    }

    /// <summary>
    /// Ends the open batch (see <see cref="BatchTransactions{TKey, TValue}.FinishOnShutdownAsync"/>) and leaves the
    /// group. Whatever ending the batch throws, the batch is aborted rather than committed, the processor ends Faulted
    /// with it, and the consumer is closed all the same.
    /// </summary>
    private async Task ShutdownAsync(CancellationToken drainToken)
    {
        if (_consumer is not { } consumer)
        {
            _status.StoppedIfRunning();
            return;
        }

        try
        {
            if (_concurrent is not null)
            {
                await _concurrent.FinishAsync(drainToken).ConfigureAwait(true);
            }

            await _transactions.FinishOnShutdownAsync(drainToken).ConfigureAwait(true);
        }
        catch (Exception e)
        {
            // User code (a scoped service's Dispose, a handler that cannot be built) or a bug: abort, never commit, and
            // hold neither the transaction open for transaction.timeout.ms nor the partitions for a session timeout.
            if (!_status.HasFailed)
            {
                _status.Fail(e, _status.IsFencing(e));
            }

            await _transactions.AbortAndRewindAsync("ending the batch failed as the processor stopped").ConfigureAwait(true);
        }
        finally
        {
            _consumers.Close(consumer); // leaves the group now, so that the partitions move without waiting for a session timeout
            _consumer = null;
        }

        _status.StoppedIfRunning();
        _telemetry.Stopped(State);
    }

    private ConcurrentLoop<TKey, TValue> CreateConcurrentLoop(ITransactionalUnitOfWork unit, Type handlerType)
    {
        var buffer = new LaneQueues();
        var dispatch = new HandlerDispatch<TKey, TValue>(_options, unit, _unitCalls, _attempts, _poison, handlerType, _deserializer, buffer, _telemetry, _time);
        var barrier = new CommitBarrier<TKey, TValue>(_producerOptions, _transactions, dispatch, buffer, _telemetry, _time);
        var failure = new BatchFailure<TKey, TValue>(_options, unit, _unitCalls, _transactions, _status, _attempts, _schedule, _telemetry, dispatch, buffer);
        _telemetry.ObserveConcurrency(() => dispatch.InFlight.Count + dispatch.InFlight.AbandonedCount, () => buffer.Count, () => buffer.HighWaterMark);
        return new ConcurrentLoop<TKey, TValue>(_options, _producerOptions, _transactions, _status, _attempts, _schedule, _rewinder, _telemetry, dispatch, barrier, failure, buffer, _time);
    }
}
