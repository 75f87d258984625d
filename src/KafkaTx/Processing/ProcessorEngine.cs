using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Retry;
using KafkaTx.Serialization;
using KafkaTx.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Processing;

/// <summary>
/// The consume-transform-produce loop. Records are handled as they are consumed, inside a transaction that commits
/// after <see cref="TransactionalProcessorOptions.MaxBatchSize"/> records or
/// <see cref="TransactionalProcessorOptions.MaxBatchDuration"/>, together with the consumer's positions
/// (SendOffsetsToTransaction, KIP-447), so that outputs and progress commit or vanish together.
/// </summary>
/// <remarks>
/// Threading: everything runs on the loop's thread. Confluent.Kafka runs the rebalance callbacks inside Consume, on
/// that same thread, so they may complete the open transaction directly (blocking on the unit of work's async
/// calls, which never capture a synchronization context).
/// Rewinding: after an abort, every assigned partition is moved back to its committed offset before anything else
/// is consumed; a record that Consume returned after a rewind became due is dropped, since it lies past records
/// whose outputs were aborted. Without the rewind, those records would be skipped for good.
/// </remarks>
internal sealed partial class ProcessorEngine<TKey, TValue> : ITransactionalProcessor
{
    private const long NoTimestamp = long.MinValue;
    private static readonly TimeSpan IdlePoll = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan CommittedOffsetsTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RewindRetryDelay = TimeSpan.FromMilliseconds(200);

    private readonly TransactionalProcessorOptions _options;
    private readonly KafkaTransactionsOptions _producerOptions;
    private readonly ITransactionalUnitOfWork _unit;
    private readonly IKafkaClientFactory _clientFactory;
    private readonly IServiceScopeFactory _scopes;
    private readonly Type _handlerType;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly DeserializerRegistry _deserializers;
    private IDeserializer<TKey>? _keyDeserializer;     // looked up at the first record, not at every one
    private IDeserializer<TValue>? _valueDeserializer;

    private readonly List<RecordKey> _processed = []; // the records whose handlers completed in the open transaction
    private readonly Dictionary<RecordKey, RecordFailure> _failures = [];
    private readonly Dictionary<TopicPartition, long> _isolateThrough = [];
    private readonly CommittedPositions _committedPositions = new();

    private IConsumer<byte[]?, byte[]?>? _consumer;
    private AsyncServiceScope? _scope;
    private ITransactionalHandler<TKey, TValue>? _handler;
    private bool _inTransaction;
    private string? _deadLetterTopicInTransaction;
    private long _transactionStartedAt;
    private bool _rewindPending;
    private bool _stopRequested;
    private int _transientFailuresInARow; // transaction failures no record caused: they back off, never count as attempts
    private TopicPartition? _lastConsumedFrom;
    private int _state;
    private readonly KafkaTxInstrumentation _instrumentation;
    private readonly KeyValuePair<string, object?>[] _tags;
    private long _uncommittedSince = NoTimestamp; // when the first record not committed yet was taken
    private long _committedTransactions;
    private long _committedRecords;

    public ProcessorEngine(
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
        Name = name.Length == 0 ? "(default)" : name;
        _instrumentation = instrumentation;
        _tags =
        [
            new("kafkatx.producer", name.Length == 0 ? "default" : name),
            new(KafkaTxInstrumentation.MessagingSystemTag, KafkaTxInstrumentation.MessagingSystem),
            new("messaging.consumer.group.name", options.GroupId),
        ];
        _options = options;
        _producerOptions = producerOptions;
        _unit = unit;
        _clientFactory = clientFactory;
        _scopes = scopes;
        _handlerType = handlerType;
        _logger = logger;
        _time = time;
        _deserializers = options.Deserializers;
    }

    public string Name { get; }

    public ProcessorState State => (ProcessorState)Volatile.Read(ref _state);

    public Exception? Failure { get; private set; }

    public long CommittedTransactions => Interlocked.Read(ref _committedTransactions);

    public long CommittedRecords => Interlocked.Read(ref _committedRecords);

    public string TransactionalId => _unit.TransactionalId;

    /// <summary>
    /// How long the oldest record taken and not committed yet has waited (work not made visible), or zero: a
    /// processor that commits every MaxBatchDuration keeps this below it; a stuck or failing one lets it grow.
    /// For health checks.
    /// </summary>
    public TimeSpan UncommittedFor => ElapsedSince(ref _uncommittedSince);

    private string Id => _unit.TransactionalId;

    /// <summary>Time since a timestamp another thread may write, or zero while it holds <see cref="NoTimestamp"/>.</summary>
    private TimeSpan ElapsedSince(ref long timestamp) =>
        Interlocked.Read(ref timestamp) is var since and not NoTimestamp ? _time.GetElapsedTime(since) : TimeSpan.Zero;

    // ---------------------------------------------------------------- the loop

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
        // The handlers' token: cancelled ShutdownTimeout after the stop, so that the handler in flight may finish.
        using var drain = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
        using var drainOnStop = stoppingToken.Register(static state =>
        {
            var (source, timeout) = ((CancellationTokenSource, TimeSpan))state!;
            try
            {
                source.CancelAfter(timeout);
            }
            catch (ObjectDisposedException)
            {
                // The loop ended first.
            }
        }, (drain, _options.ShutdownTimeout));
        SetState(ProcessorState.Starting);
        using var lagRegistration = _instrumentation.AddLagSource(ObserveLag);
        try
        {
            await InitializeProducerAsync(stoppingToken).ConfigureAwait(true);
            _consumer = _clientFactory.CreateConsumer(ProcessorConsumerConfig.Build(_options, _producerOptions), new ConsumerEventHandlers
            {
                PartitionsAssigned = OnPartitionsAssigned,
                PartitionsRevoked = OnPartitionsRevoked,
                PartitionsLost = OnPartitionsLost,
                Error = OnConsumerError,
                Log = OnConsumerLog,
            });
            _consumer.Subscribe(_options.Topics);
            SetState(ProcessorState.Running);
            Log.ProcessorStarted(_logger, Name, Id, string.Join(",", _options.Topics), _options.GroupId!);

            while (!_stopRequested && !stoppingToken.IsCancellationRequested)
            {
                await StepAsync(stoppingToken, drain.Token).ConfigureAwait(true);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping: ShutdownAsync finishes the open transaction (it aborts it if the drain ran out).
        }
        catch (Exception e) when (State is not (ProcessorState.Fenced or ProcessorState.Faulted))
        {
            // Fencing can surface anywhere (librdkafka may learn of it in the background and refuse BeginTransaction).
            if (_unit.State == TransactionState.Fenced || TransactionErrorClassifier.Classify(e) == TransactionErrorKind.Fenced)
            {
                Log.ProcessorFenced(_logger, Name, Id, e);
                Stop(ProcessorState.Fenced, e);
            }
            else
            {
                Log.ProcessorFailed(_logger, Name, Id, e);
                Stop(ProcessorState.Faulted, e);
            }
        }
        finally
        {
            await ShutdownAsync(drain.Token).ConfigureAwait(true);
        }
    }

    private async Task InitializeProducerAsync(CancellationToken cancellationToken)
    {
        var attempt = 1;
        while (true)
        {
            try
            {
                await _unit.InitializeAsync(cancellationToken).ConfigureAwait(true);
                return;
            }
            catch (KafkaTransactionException e) when (e.Kind == TransactionErrorKind.Retriable)
            {
                // The coordinator may come back; a processor keeps trying until the host stops it.
                var delay = RetryBackoff.DelayBefore(_options.Retry, ++attempt, Random.Shared.NextDouble());
                Log.ProcessorInitRetry(_logger, Name, Id, (long)delay.TotalMilliseconds, e);
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(true);
            }
        }
    }

    /// <summary>One step: consume at most one record, handle it, commit when due.</summary>
    /// <param name="stoppingToken">The stop: no new record is taken once it is cancelled.</param>
    /// <param name="drainToken">The handler's token and the commit's: cancelled only when the stop's ShutdownTimeout runs out.</param>
    private async Task StepAsync(CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var now = _time.GetTimestamp(); // one clock read a step: the lag, the poll timeout, the commit check (a record late at most)
        RefreshLag(now);
        if (_rewindPending && !TryRewind())
        {
            await Task.Delay(RewindRetryDelay, _time, stoppingToken).ConfigureAwait(true);
            return;
        }

        ConsumeResult<byte[]?, byte[]?>? result;
        try
        {
            result = _consumer!.Consume(ConsumeTimeout(now));
        }
        catch (ConsumeException e) when (!e.Error.IsFatal)
        {
            // Not fatal (a subscribed topic that does not exist yet, a broker gone for a while): librdkafka recovers
            // on its own. The open transaction, if any, stays open and commits on schedule.
            Log.ConsumerError(_logger, Name, e.Error.Code, e.Error.Reason, isFatal: false);
            await Task.Delay(IdlePoll, _time, stoppingToken).ConfigureAwait(true);
            return;
        }

        if (result is not null)
        {
            NoteConsumed(result.TopicPartition, result.Offset.Value);
        }

        if (_stopRequested || stoppingToken.IsCancellationRequested)
        {
            return; // stopping takes no new record: this one is left for whoever owns the partition next
        }

        if (_rewindPending)
        {
            // A rebalance callback aborted the transaction while Consume ran: this record may lie past aborted ones.
            return;
        }

        if (result is not null && !result.IsPartitionEOF)
        {
            await ProcessAsync(result, stoppingToken, drainToken).ConfigureAwait(true);
        }

        if (_inTransaction && !_stopRequested && IsDueForCommit(now))
        {
            await CommitAsync(drainToken).ConfigureAwait(true);
        }
    }

    /// <summary>
    /// Remembers the first offset consumed from each partition since it was assigned: the rewind target of a partition
    /// that has no committed offset yet (seeking to the reset position instead would skip records, with Latest).
    /// </summary>
    private void NoteConsumed(TopicPartition partition, long offset)
    {
        if (_lastConsumedFrom is { } last && last.Partition.Value == partition.Partition.Value && ReferenceEquals(last.Topic, partition.Topic))
        {
            return; // records mostly come in runs from one partition
        }

        _committedPositions.Consumed(partition, offset);
        _lastConsumedFrom = partition;
    }

    private TimeSpan ConsumeTimeout(long now)
    {
        // Never wait longer than IdlePoll, so that a stop request is noticed promptly even with a long batch window.
        if (!_inTransaction)
        {
            return IdlePoll;
        }

        var remaining = _options.MaxBatchDuration - _time.GetElapsedTime(_transactionStartedAt, now);
        return remaining <= TimeSpan.Zero ? TimeSpan.Zero : remaining < IdlePoll ? remaining : IdlePoll;
    }

    private bool IsDueForCommit(long now)
    {
        var age = _time.GetElapsedTime(_transactionStartedAt, now);
        if (_processed.Count >= _options.MaxBatchSize || age >= _options.MaxBatchDuration)
        {
            return true;
        }

        // A transaction approaching transaction.timeout.ms is committed early rather than left for the broker to abort.
        if (age >= _producerOptions.TransactionTimeout / 2)
        {
            Log.CommittingEarly(_logger, Name, Id, (long)age.TotalMilliseconds);
            return true;
        }

        // While re-processing the records of a failed transaction, commit each on its own to find the one at fault.
        if (_isolateThrough.Count == 0)
        {
            return false;
        }

        var last = _processed.Count > 0 ? _processed[^1] : default;
        return _processed.Count > 0 && _isolateThrough.TryGetValue(last.TopicPartition, out var through) && last.Offset <= through;
    }

    // ---------------------------------------------------------------- one record

    private async Task ProcessAsync(ConsumeResult<byte[]?, byte[]?> result, CancellationToken stoppingToken, CancellationToken drainToken)
    {
        var key = RecordKey.Of(result);
        if (!_inTransaction)
        {
            await BeginAsync(stoppingToken, drainToken).ConfigureAwait(true);
        }

        // Taken, not committed: from now on it waits for a commit (a handler that hangs on it counts too).
        if (Interlocked.Read(ref _uncommittedSince) == NoTimestamp)
        {
            Interlocked.Exchange(ref _uncommittedSince, _time.GetTimestamp());
        }

        RecordFailure? failure = null;
        if (_failures.Count > 0)
        {
            _failures.TryGetValue(key, out failure);
        }

        if (failure is not null && failure.Attempts >= _options.Retry.MaxAttempts)
        {
            try
            {
                await HandlePoisonAsync(result, key, failure).ConfigureAwait(true);
            }
            catch (KafkaTransactionException e) when (IsTransactionFailure(e))
            {
                await RetryTransactionAsync(e, stoppingToken).ConfigureAwait(true);
            }

            return;
        }

        using var recordActivity = StartRecordActivity(result);
        try
        {
            ConsumeResult<TKey, TValue> record;
            using (ProcessorThread.WithoutContext()) // user code: the application's deserializers
            {
                record = Deserialize(result);
            }

            await HandleAsync(record, drainToken).ConfigureAwait(true);
            _processed.Add(key);
            _instrumentation.ProcessorRecordsHandled.Add(1, _tags);
        }
        catch (OperationCanceledException e) when (drainToken.IsCancellationRequested)
        {
            // The stop's ShutdownTimeout ran out while the handler was running: whatever it wrote must not commit.
            EndRecordActivity(recordActivity, e);
            await AbortAndRewindAsync($"the handler of {key} was cancelled when ShutdownTimeout ran out").ConfigureAwait(true);
            throw;
        }
        catch (KafkaTransactionException e) when (IsTransactionFailure(e) && !OutlivedTransactionTimeout())
        {
            // The transaction failed under the handler (the coordinator moved, say): not the record's fault.
            EndRecordActivity(recordActivity, e);
            await RetryTransactionAsync(e, stoppingToken).ConfigureAwait(true);
        }
        catch (Exception e)
        {
            if (_unit.State is TransactionState.Fenced or TransactionState.Faulted)
            {
                await StopForUnitFailureAsync(e).ConfigureAwait(true);
                return;
            }

            var attempts = (failure?.Attempts ?? 0) + 1;
            _failures[key] = new RecordFailure(attempts, e);
            EndRecordActivity(recordActivity, e);
            Log.HandlerFailed(_logger, Name, key.TopicPartition.Topic, key.TopicPartition.Partition.Value, key.Offset, attempts, _options.Retry.MaxAttempts, e);
            await AbortAndRewindAsync($"the handler failed on {key}").ConfigureAwait(true);
            await BackoffAsync(attempts, stoppingToken).ConfigureAwait(true);
        }
    }

    /// <summary>
    /// Calls the handler with no synchronization context, so that its continuations run on the thread pool rather than
    /// queue behind the loop's, and a handler that blocks on a task cannot deadlock it.
    /// </summary>
    private ValueTask HandleAsync(ConsumeResult<TKey, TValue> record, CancellationToken cancellationToken)
    {
        using (ProcessorThread.WithoutContext())
        {
            return _handler!.HandleAsync(record, _unit, cancellationToken);
        }
    }

    /// <summary>
    /// Whether a failure is the transaction's rather than a record's: abortable, retriable or of unknown outcome.
    /// Those retry with backoff and never count as a record's attempt; a refusal of the record's own output
    /// (<see cref="TransactionErrorKind.Rejected"/>) does count. Fenced and fatal failures stop the processor.
    /// </summary>
    private bool IsTransactionFailure(KafkaTransactionException e) =>
        e.Kind is TransactionErrorKind.Abortable or TransactionErrorKind.Retriable or TransactionErrorKind.OutcomeUnknown
        && (e.TransactionalId is null || e.TransactionalId == _unit.TransactionalId); // not another unit the handler used

    /// <summary>
    /// Whether the open transaction has outlived TransactionTimeout: then its failure is the batch's own doing (a handler
    /// too slow for one transaction), counted against its records like a handler failure, or it would loop for ever.
    /// </summary>
    private bool OutlivedTransactionTimeout() =>
        _inTransaction && _time.GetElapsedTime(_transactionStartedAt) >= _producerOptions.TransactionTimeout;

    private ConsumeResult<TKey, TValue> Deserialize(ConsumeResult<byte[]?, byte[]?> result)
    {
        var headers = result.Message.Headers;
        var keyContext = new SerializationContext(MessageComponentType.Key, result.Topic, headers);
        var valueContext = new SerializationContext(MessageComponentType.Value, result.Topic, headers);
        _keyDeserializer ??= _deserializers.Resolve<TKey>(keyContext);
        _valueDeserializer ??= _deserializers.Resolve<TValue>(valueContext);
        if (result is ConsumeResult<TKey, TValue> same
            && ReferenceEquals(_keyDeserializer, Deserializers.ByteArray) && ReferenceEquals(_valueDeserializer, Deserializers.ByteArray))
        {
            return same; // a byte[] processor gets the consumed record itself: it was built for this record alone
        }

        return new ConsumeResult<TKey, TValue>
        {
            TopicPartitionOffset = result.TopicPartitionOffset,
            Message = new Message<TKey, TValue>
            {
                Key = DeserializerRegistry.Deserialize(_keyDeserializer, result.Message.Key, keyContext),
                Value = DeserializerRegistry.Deserialize(_valueDeserializer, result.Message.Value, valueContext),
                Headers = headers,
                Timestamp = result.Message.Timestamp,
            },
            LeaderEpoch = result.LeaderEpoch,
        };
    }

    // ---------------------------------------------------------------- transactions

    /// <param name="cancellationToken">The stop: initializing or resuming an abort gives up when it is cancelled.</param>
    /// <param name="drainToken">The transaction's own: a Produce waiting for room in a full queue stops when it is cancelled.</param>
    private async Task BeginAsync(CancellationToken cancellationToken, CancellationToken drainToken)
    {
        if (_unit.State == TransactionState.Aborting)
        {
            await _unit.AbortAsync(cancellationToken).ConfigureAwait(true); // resume an abort that timed out
        }

        if (_unit.State == TransactionState.Uninitialized)
        {
            await InitializeProducerAsync(cancellationToken).ConfigureAwait(true); // the unit replaced its producer
        }

        // Current in this flow only, so that the unit's transaction span is the batch's child.
        StartBatchActivity();
        try
        {
            try
            {
                BeginTransaction(drainToken);
            }
            catch (KafkaTransactionException) when (_unit.State == TransactionState.Uninitialized)
            {
                // The producer had hit a fatal error in the background and the unit replaced it: initialize and go on.
                await InitializeProducerAsync(cancellationToken).ConfigureAwait(true);
                BeginTransaction(drainToken);
            }
        }
        catch
        {
            EndBatchActivity(BatchOutcome.NotStarted);
            throw;
        }

        _inTransaction = true;
        _transactionStartedAt = _time.GetTimestamp();
        using (ProcessorThread.WithoutContext()) // user code: the handler's and its dependencies' constructors
        {
            _scope = _scopes.CreateAsyncScope();
            _handler = (ITransactionalHandler<TKey, TValue>)_scope.Value.ServiceProvider.GetRequiredService(_handlerType);
        }
    }

    private void BeginTransaction(CancellationToken drainToken)
    {
        if (_unit is TransactionalUnitOfWork unit)
        {
            unit.BeginTransaction(drainToken);
        }
        else
        {
            _unit.BeginTransaction();
        }
    }

    private async Task CommitAsync(CancellationToken cancellationToken)
    {
        var records = _processed.Count;
        var offsets = OffsetsOfHandledRecords();
        try
        {
            // Group metadata is read now, never cached across a rebalance.
            if (offsets.Count > 0)
            {
                await _unit.SendOffsetsAsync(offsets, _consumer!.ConsumerGroupMetadata, cancellationToken).ConfigureAwait(true);
            }

            await _unit.CommitAsync(cancellationToken).ConfigureAwait(true);
        }
        catch (KafkaTransactionException e)
        {
            await HandleCommitFailureAsync(e, cancellationToken).ConfigureAwait(true);
            return;
        }

        _transientFailuresInARow = 0;

        foreach (var key in _processed)
        {
            _failures.Remove(key);
            if (_isolateThrough.TryGetValue(key.TopicPartition, out var through) && key.Offset >= through)
            {
                _isolateThrough.Remove(key.TopicPartition);
            }
        }

        _committedPositions.Committed(offsets);
        Interlocked.Exchange(ref _uncommittedSince, NoTimestamp);
        _instrumentation.ProcessorBatchesCommitted.Add(1, _tags);
        Interlocked.Increment(ref _committedTransactions);
        Interlocked.Add(ref _committedRecords, records);
        await EndTransactionAsync(BatchOutcome.Committed).ConfigureAwait(true);
    }

    /// <summary>
    /// Per partition, the offset after the last record whose handler completed: never the consumer's position, which
    /// may lie past a record that was consumed and not handled (a stop, a cancelled handler). Where that offset holds
    /// a transaction marker, the next read skips it.
    /// </summary>
    private List<TopicPartitionOffset> OffsetsOfHandledRecords()
    {
        var next = new Dictionary<TopicPartition, long>();
        foreach (var key in _processed)
        {
            if (!next.TryGetValue(key.TopicPartition, out var offset) || offset <= key.Offset)
            {
                next[key.TopicPartition] = key.Offset + 1;
            }
        }

        return [.. next.Select(p => new TopicPartitionOffset(p.Key, p.Value))];
    }

    /// <summary>The partitions read in the open transaction.</summary>
    private IEnumerable<TopicPartition> TouchedPartitions() => _processed.Select(k => k.TopicPartition).Distinct();

    private async Task SettlePendingTransactionAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _unit.InitializeAsync(cancellationToken).ConfigureAwait(true);
        }
        catch (KafkaTransactionException e) when (e.Kind == TransactionErrorKind.Retriable)
        {
            // The coordinator is away: the next transaction initializes the producer; the rewind may read offsets
            // that are not final yet, which only a broker before 2.5 can show, and only while it is this slow.
            Log.ProcessorSettleDeferred(_logger, Name, Id, e);
        }
    }

    private async Task HandleCommitFailureAsync(KafkaTransactionException failure, CancellationToken cancellationToken)
    {
        if (failure.Kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal || _unit.State is TransactionState.Fenced or TransactionState.Faulted)
        {
            await StopForUnitFailureAsync(failure).ConfigureAwait(true);
            return;
        }

        if (failure.Kind == TransactionErrorKind.OutcomeUnknown)
        {
            // Whether these offsets committed is unknown: the rewind asks the group for them. A commit still pending
            // (it timed out) is settled by a new producer, whose InitTransactions completes or aborts it.
            Log.ProcessorCommitOutcomeUnknown(_logger, Name, Id, _processed.Count, failure);
            _committedPositions.ForgetCommitted(TouchedPartitions());
            if (_unit.State == TransactionState.Committing)
            {
                await _unit.ResetAsync(CancellationToken.None).ConfigureAwait(true);
            }

            // Before the group is asked: the new producer's InitTransactions returns only once the coordinator has
            // finished the pending transaction, markers included, so the offsets the rewind reads are final even on
            // brokers without KIP-447's stable offset fetch.
            await SettlePendingTransactionAsync(cancellationToken).ConfigureAwait(true);
            await EndTransactionAsync(BatchOutcome.OutcomeUnknown).ConfigureAwait(true);
            _rewindPending = true;
            return;
        }

        if (failure.Kind != TransactionErrorKind.Rejected && !OutlivedTransactionTimeout())
        {
            await RetryTransactionAsync(failure, cancellationToken).ConfigureAwait(true);
            return;
        }

        // Kafka refused a record this batch wrote: the fault of the record whose handler wrote it.
        if (_unit.State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            await AbortQuietlyAsync().ConfigureAwait(true);
        }

        if (_processed.Count == 1 && _deadLetterTopicInTransaction is { } deadLetterTopic)
        {
            // Writing the poison record to the dead-letter topic failed: retrying would loop for ever.
            await EndTransactionAsync(BatchOutcome.Aborted).ConfigureAwait(true);
            Log.ProcessorFailed(_logger, Name, Id, failure);
            Stop(ProcessorState.Faulted, new InvalidOperationException(
                $"Processor '{Name}' could not write a poison record to the dead-letter topic '{deadLetterTopic}' ({failure.Error.Code}: {failure.Error.Reason}). Create the topic (or allow writing to it), or choose another DeadLetterTopic or poison record policy, then restart.",
                failure));
            return;
        }

        if (_processed.Count == 1)
        {
            var key = _processed[0];
            var attempts = (_failures.TryGetValue(key, out var previous) ? previous.Attempts : 0) + 1;
            _failures[key] = new RecordFailure(attempts, failure);
        }
        else
        {
            // Which record's output was refused is not known: commit them one by one to find it.
            foreach (var key in _processed)
            {
                _isolateThrough[key.TopicPartition] = Math.Max(_isolateThrough.GetValueOrDefault(key.TopicPartition, -1), key.Offset);
            }
        }

        Log.CommitFailed(_logger, Name, Id, failure.Kind, _processed.Count, failure);
        var backoffAttempts = _processed.Count == 1 ? _failures[_processed[0]].Attempts : 1;
        await EndTransactionAsync(BatchOutcome.Aborted).ConfigureAwait(true);
        _rewindPending = true;
        await BackoffAsync(backoffAttempts, cancellationToken).ConfigureAwait(true);
    }

    /// <summary>
    /// The transaction failed for a reason no record caused (abortable or retriable: a coordinator that moved, a
    /// request that timed out): abort, rewind and back off, without counting an attempt against any record, so that
    /// nothing is dead-lettered or skipped for it. The backoff grows with the failures in a row.
    /// </summary>
    private async Task RetryTransactionAsync(KafkaTransactionException failure, CancellationToken cancellationToken)
    {
        _transientFailuresInARow++;
        Log.CommitFailed(_logger, Name, Id, failure.Kind, _processed.Count, failure);
        await AbortAndRewindAsync($"the transaction failed ({failure.Kind}: {failure.Error.Code})").ConfigureAwait(true);
        await BackoffAsync(_transientFailuresInARow, cancellationToken).ConfigureAwait(true);
    }

    private async Task AbortAndRewindAsync(string reason)
    {
        if (_inTransaction && _unit.State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            Log.ProcessorAborting(_logger, Name, Id, reason);
            await AbortQuietlyAsync().ConfigureAwait(true);
        }

        await EndTransactionAsync(BatchOutcome.Aborted).ConfigureAwait(true);
        _rewindPending = true;
    }

    private async Task AbortQuietlyAsync()
    {
        try
        {
            await _unit.AbortAsync(CancellationToken.None).ConfigureAwait(true);
        }
        catch (KafkaTransactionException e) when (e.Kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal)
        {
            await StopForUnitFailureAsync(e).ConfigureAwait(true);
        }
        catch (KafkaTransactionException e)
        {
            // Still Aborting: the next BeginAsync resumes the abort. Nothing of it is visible meanwhile.
            Log.ProcessorAbortIncomplete(_logger, Name, Id, e);
        }
    }

    private async Task EndTransactionAsync(string outcome)
    {
        EndBatchActivity(outcome);
        _inTransaction = false;
        _deadLetterTopicInTransaction = null;
        _processed.Clear();
        _handler = null;
        if (_scope is { } scope)
        {
            _scope = null;
            ValueTask disposing;
            using (ProcessorThread.WithoutContext()) // user code: scoped services' Dispose may block on their own tasks
            {
                disposing = scope.DisposeAsync();
            }

            await disposing.ConfigureAwait(true);
        }
    }

    /// <summary>
    /// The unit of work can no longer be used: fenced (another instance owns the transactional.id), or faulted (its
    /// self-healing gave up, or the error cannot be healed). The processor stops; its host decides what follows.
    /// </summary>
    private async Task StopForUnitFailureAsync(Exception failure)
    {
        var fenced = _unit.State == TransactionState.Fenced || TransactionErrorClassifier.Classify(failure) == TransactionErrorKind.Fenced;
        await EndTransactionAsync(fenced ? BatchOutcome.Fenced : BatchOutcome.Faulted).ConfigureAwait(true);
        if (fenced)
        {
            Log.ProcessorFenced(_logger, Name, Id, failure);
            Stop(ProcessorState.Fenced, failure);
            return;
        }

        Log.ProcessorFailed(_logger, Name, Id, failure);
        Stop(ProcessorState.Faulted, failure);
    }

    private async Task BackoffAsync(int attempts, CancellationToken cancellationToken)
    {
        var delay = RetryBackoff.DelayBefore(_options.Retry, attempts + 1, Random.Shared.NextDouble());
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(true);
        }
    }

    // ---------------------------------------------------------------- shutdown

    /// <summary>
    /// Ends the open transaction and leaves the group. The transaction commits only while the drain allows it (the
    /// stop's ShutdownTimeout has not run out) and with the offsets of the records whose handlers completed; a
    /// transaction whose handler was cancelled or failed was aborted already. Anything else is aborted.
    /// </summary>
    private async Task ShutdownAsync(CancellationToken drainToken)
    {
        if (_consumer is null)
        {
            StopIfRunning();
            return;
        }

        if (_inTransaction)
        {
            if (_unit.State == TransactionState.InTransaction && !drainToken.IsCancellationRequested)
            {
                try
                {
                    await CommitAsync(drainToken).ConfigureAwait(true);
                }
                catch (Exception e) when (e is OperationCanceledException or KafkaException or InvalidOperationException)
                {
                    Log.ShutdownCommitFailed(_logger, Name, Id, e);
                }
            }

            if (_inTransaction && _unit.State == TransactionState.Committing)
            {
                // The drain ran out while the commit was in flight: settle it now (a resumed commit, or a new
                // producer's InitTransactions), so that no transaction is left hanging for the partitions' next owner.
                await SettlePendingTransactionAsync(CancellationToken.None).ConfigureAwait(true);
                await EndTransactionAsync(BatchOutcome.OutcomeUnknown).ConfigureAwait(true);
            }

            if (_inTransaction && _unit.State is TransactionState.InTransaction or TransactionState.Aborting)
            {
                await AbortQuietlyAsync().ConfigureAwait(true);
            }

            if (_inTransaction)
            {
                await EndTransactionAsync(BatchOutcome.Aborted).ConfigureAwait(true);
            }
        }

        try
        {
            _consumer.Close(); // leave the group now, so that the partitions move without waiting for a session timeout
        }
        catch (Exception e) when (e is KafkaException or InvalidOperationException)
        {
            var error = (e as KafkaException)?.Error;
            Log.ConsumerError(_logger, Name, error?.Code ?? ErrorCode.Local_State, error?.Reason ?? e.Message, error?.IsFatal ?? false);
        }
        finally
        {
            _consumer.Dispose();
            _consumer = null;
            _lag = [];
        }

        StopIfRunning();
        Log.ProcessorStopped(_logger, Name, Id, State, CommittedTransactions, CommittedRecords);
    }

    private void StopIfRunning()
    {
        if (State is ProcessorState.Created or ProcessorState.Starting or ProcessorState.Running)
        {
            SetState(ProcessorState.Stopped);
        }
    }

    private void Stop(ProcessorState state, Exception failure)
    {
        Failure = failure;
        SetState(state);
        _stopRequested = true;
    }

    private void SetState(ProcessorState state) => Volatile.Write(ref _state, (int)state);

    private readonly record struct RecordKey(TopicPartition TopicPartition, long Offset)
    {
        public static RecordKey Of(ConsumeResult<byte[]?, byte[]?> result) => new(result.TopicPartition, result.Offset.Value);

        public override string ToString() => $"{TopicPartition.Topic} [{TopicPartition.Partition.Value}] @{Offset}";
    }

    private sealed record RecordFailure(int Attempts, Exception LastError);
}
