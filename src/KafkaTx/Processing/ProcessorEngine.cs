using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Retry;
using KafkaTx.Serialization;
using KafkaTx.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

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

    private readonly HashSet<TopicPartition> _touched = [];
    private TopicPartition? _lastTouched;
    private readonly List<RecordKey> _processed = [];
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
        _deserializers = producerOptions.Deserializers;
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

    public async Task RunAsync(CancellationToken stoppingToken)
    {
        SetState(ProcessorState.Starting);
        using var lagRegistration = _instrumentation.AddLagSource(ObserveLag);
        try
        {
            await InitializeProducerAsync(stoppingToken).ConfigureAwait(false);
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
                await StepAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping: ShutdownAsync finishes the open transaction.
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
            await ShutdownAsync().ConfigureAwait(false);
        }
    }

    private async Task InitializeProducerAsync(CancellationToken cancellationToken)
    {
        var attempt = 1;
        while (true)
        {
            try
            {
                await _unit.InitializeAsync(cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (KafkaTransactionException e) when (e.Kind == TransactionErrorKind.Retriable)
            {
                // The coordinator may come back; a processor keeps trying until the host stops it.
                var delay = RetryBackoff.DelayBefore(_options.Retry, ++attempt, Random.Shared.NextDouble());
                Log.ProcessorInitRetry(_logger, Name, Id, (long)delay.TotalMilliseconds, e);
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task StepAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetTimestamp(); // one clock read a step: the lag, the poll timeout, the commit check (a record late at most)
        RefreshLag(now);
        if (_rewindPending && !TryRewind())
        {
            await Task.Delay(RewindRetryDelay, _time, cancellationToken).ConfigureAwait(false);
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
            await Task.Delay(IdlePoll, _time, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (_stopRequested)
        {
            return;
        }

        if (_rewindPending)
        {
            // A rebalance callback aborted the transaction while Consume ran: this record may lie past aborted ones.
            return;
        }

        if (result is not null && !result.IsPartitionEOF)
        {
            await ProcessAsync(result, cancellationToken).ConfigureAwait(false);
        }

        if (_inTransaction && !_stopRequested && IsDueForCommit(now))
        {
            await CommitAsync(cancellationToken).ConfigureAwait(false);
        }
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

    private async Task ProcessAsync(ConsumeResult<byte[]?, byte[]?> result, CancellationToken cancellationToken)
    {
        var key = RecordKey.Of(result);
        if (!_inTransaction)
        {
            await BeginAsync(cancellationToken).ConfigureAwait(false);
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
            await HandlePoisonAsync(result, key, failure).ConfigureAwait(false);
            return;
        }

        using var recordActivity = StartRecordActivity(result);
        try
        {
            var record = Deserialize(result);
            await _handler!.HandleAsync(record, _unit, cancellationToken).ConfigureAwait(false);
            Touch(key.TopicPartition);
            _processed.Add(key);
            _instrumentation.ProcessorRecordsHandled.Add(1, _tags);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e)
        {
            if (_unit.State is TransactionState.Fenced or TransactionState.Faulted)
            {
                await StopForUnitFailureAsync(e).ConfigureAwait(false);
                return;
            }

            var attempts = (failure?.Attempts ?? 0) + 1;
            _failures[key] = new RecordFailure(attempts, e);
            EndRecordActivity(recordActivity, e);
            Log.HandlerFailed(_logger, Name, key.TopicPartition.Topic, key.TopicPartition.Partition.Value, key.Offset, attempts, _options.Retry.MaxAttempts, e);
            await AbortAndRewindAsync($"the handler failed on {key}").ConfigureAwait(false);
            await BackoffAsync(attempts, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Notes a partition as read in this transaction; records mostly come in runs from one partition, so the last one is remembered.</summary>
    private void Touch(TopicPartition partition)
    {
        if (_lastTouched is { } last && last.Partition.Value == partition.Partition.Value && ReferenceEquals(last.Topic, partition.Topic))
        {
            return;
        }

        _touched.Add(partition);
        _lastTouched = partition;
    }

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

    private async Task BeginAsync(CancellationToken cancellationToken)
    {
        if (_unit.State == TransactionState.Aborting)
        {
            await _unit.AbortAsync(cancellationToken).ConfigureAwait(false); // resume an abort that timed out
        }

        if (_unit.State == TransactionState.Uninitialized)
        {
            await InitializeProducerAsync(cancellationToken).ConfigureAwait(false); // the unit replaced its producer
        }

        // Current in this flow only, so that the unit's transaction span is the batch's child.
        StartBatchActivity();
        try
        {
            try
            {
                _unit.BeginTransaction();
            }
            catch (KafkaTransactionException) when (_unit.State == TransactionState.Uninitialized)
            {
                // The producer had hit a fatal error in the background and the unit replaced it: initialize and go on.
                await InitializeProducerAsync(cancellationToken).ConfigureAwait(false);
                _unit.BeginTransaction();
            }
        }
        catch
        {
            EndBatchActivity(BatchOutcome.NotStarted);
            throw;
        }

        _inTransaction = true;
        _transactionStartedAt = _time.GetTimestamp();
        _scope = _scopes.CreateAsyncScope();
        _handler = (ITransactionalHandler<TKey, TValue>)_scope.Value.ServiceProvider.GetRequiredService(_handlerType);
    }

    private async Task CommitAsync(CancellationToken cancellationToken)
    {
        var records = _processed.Count;
        List<TopicPartitionOffset> offsets;
        try
        {
            // The consumer's positions, not "last offset + 1": transaction markers leave gaps, and the position is
            // where the next read starts. Group metadata is read now, never cached across a rebalance.
            offsets = _touched.Select(tp => new TopicPartitionOffset(tp, _consumer!.Position(tp))).Where(o => o.Offset.Value >= 0).ToList();
            if (offsets.Count > 0)
            {
                await _unit.SendOffsetsAsync(offsets, _consumer!.ConsumerGroupMetadata, cancellationToken).ConfigureAwait(false);
            }

            await _unit.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaTransactionException e)
        {
            await HandleCommitFailureAsync(e, cancellationToken).ConfigureAwait(false);
            return;
        }

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
        await EndTransactionAsync(BatchOutcome.Committed).ConfigureAwait(false);
    }

    private async Task SettlePendingTransactionAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _unit.InitializeAsync(cancellationToken).ConfigureAwait(false);
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
            await StopForUnitFailureAsync(failure).ConfigureAwait(false);
            return;
        }

        if (failure.Kind == TransactionErrorKind.OutcomeUnknown)
        {
            // Whether these offsets committed is unknown: the rewind asks the group for them. A commit still pending
            // (it timed out) is settled by a new producer, whose InitTransactions completes or aborts it.
            Log.ProcessorCommitOutcomeUnknown(_logger, Name, Id, _processed.Count, failure);
            _committedPositions.Forget(_touched);
            if (_unit.State == TransactionState.Committing)
            {
                await _unit.ResetAsync(cancellationToken).ConfigureAwait(false);
            }

            // Before the group is asked: the new producer's InitTransactions returns only once the coordinator has
            // finished the pending transaction, markers included, so the offsets the rewind reads are final even on
            // brokers without KIP-447's stable offset fetch.
            await SettlePendingTransactionAsync(cancellationToken).ConfigureAwait(false);
            await EndTransactionAsync(BatchOutcome.OutcomeUnknown).ConfigureAwait(false);
            _rewindPending = true;
            return;
        }

        if (_unit.State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            await AbortQuietlyAsync().ConfigureAwait(false);
        }

        if (_processed.Count == 1 && _deadLetterTopicInTransaction is { } deadLetterTopic)
        {
            // Writing the poison record to the dead-letter topic failed: retrying would loop for ever.
            await EndTransactionAsync(BatchOutcome.Aborted).ConfigureAwait(false);
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
            foreach (var key in _processed)
            {
                _isolateThrough[key.TopicPartition] = Math.Max(_isolateThrough.GetValueOrDefault(key.TopicPartition, -1), key.Offset);
            }
        }

        Log.CommitFailed(_logger, Name, Id, failure.Kind, _processed.Count, failure);
        var backoffAttempts = _processed.Count == 1 ? _failures[_processed[0]].Attempts : 1;
        await EndTransactionAsync(BatchOutcome.Aborted).ConfigureAwait(false);
        _rewindPending = true;
        await BackoffAsync(backoffAttempts, cancellationToken).ConfigureAwait(false);
    }

    private async Task AbortAndRewindAsync(string reason)
    {
        if (_inTransaction && _unit.State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            Log.ProcessorAborting(_logger, Name, Id, reason);
            await AbortQuietlyAsync().ConfigureAwait(false);
        }

        await EndTransactionAsync(BatchOutcome.Aborted).ConfigureAwait(false);
        _rewindPending = true;
    }

    private async Task AbortQuietlyAsync()
    {
        try
        {
            await _unit.AbortAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (KafkaTransactionException e) when (e.Kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal)
        {
            await StopForUnitFailureAsync(e).ConfigureAwait(false);
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
        _touched.Clear();
        _lastTouched = null;
        _processed.Clear();
        _handler = null;
        if (_scope is { } scope)
        {
            _scope = null;
            await scope.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The unit of work can no longer be used: fenced (another instance owns the transactional.id), or faulted (its
    /// self-healing gave up, or the error cannot be healed). The processor stops; its host decides what follows.
    /// </summary>
    private async Task StopForUnitFailureAsync(Exception failure)
    {
        var fenced = _unit.State == TransactionState.Fenced || TransactionErrorClassifier.Classify(failure) == TransactionErrorKind.Fenced;
        await EndTransactionAsync(fenced ? BatchOutcome.Fenced : BatchOutcome.Faulted).ConfigureAwait(false);
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
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- shutdown

    private async Task ShutdownAsync()
    {
        if (_consumer is null)
        {
            StopIfRunning();
            return;
        }

        if (_inTransaction && _unit.State == TransactionState.InTransaction)
        {
            using var deadline = new CancellationTokenSource(_options.ShutdownTimeout);
            try
            {
                await CommitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or KafkaException)
            {
                Log.ShutdownCommitFailed(_logger, Name, Id, e);
            }

            if (_unit.State is TransactionState.InTransaction or TransactionState.Aborting)
            {
                await AbortQuietlyAsync().ConfigureAwait(false);
            }

            await EndTransactionAsync(BatchOutcome.Aborted).ConfigureAwait(false);
        }

        try
        {
            _consumer.Close(); // leave the group now, so that the partitions move without waiting for a session timeout
        }
        catch (KafkaException e)
        {
            Log.ConsumerError(_logger, Name, e.Error.Code, e.Error.Reason, e.Error.IsFatal);
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
