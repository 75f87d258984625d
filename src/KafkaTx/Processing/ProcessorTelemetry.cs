using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Confluent.Kafka;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Processing;

/// <summary>
/// What the processor tells the world: its spans (one per batch, one per handled record, the record's own trace as
/// parent), its metrics, its log events, its consumer lag, and the progress health checks read (committed counts, how
/// long work has waited for a commit, how long new records have waited). One call per event. With no listener on the
/// KafkaTx source no span is created and no header is read.
/// </summary>
/// <remarks>Written on the processor's thread; the progress properties are read from any thread.</remarks>
internal sealed class ProcessorTelemetry
{
    private const long NoTimestamp = long.MinValue;

    private readonly KafkaTxInstrumentation _instrumentation;
    private readonly KeyValuePair<string, object?>[] _tags;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ConsumerLag _lag;
    private readonly Clients.BrokerConnection _consumerConnection;
    private long _uncommittedSince = NoTimestamp; // when the first record not committed yet was taken
    private long _committedTransactions;
    private long _committedRecords;
    private (GaugeSources Gauge, Func<long> Read)[]? _concurrency;

    public ProcessorTelemetry(string name, string? groupId, string transactionalId, KafkaTxInstrumentation instrumentation, ILogger logger, TimeProvider time)
    {
        Name = name.Length == 0 ? "(default)" : name;
        Id = transactionalId;
        GroupId = groupId;
        _instrumentation = instrumentation;
        _tags =
        [
            new("kafkatx.producer", name.Length == 0 ? "default" : name),
            new(KafkaTxInstrumentation.MessagingSystemTag, KafkaTxInstrumentation.MessagingSystem),
            new("messaging.consumer.group.name", groupId),
        ];
        _logger = logger;
        _time = time;
        _lag = new ConsumerLag(time, _tags);
        _consumerConnection = new Clients.BrokerConnection($"consumer of processor {Name}", logger, time, Clients.BrokerConnection.QuietPeriodOf(null));
    }

    /// <summary>The processor's name in logs.</summary>
    public string Name { get; }

    /// <summary>Its producer's transactional.id.</summary>
    public string Id { get; }

    /// <summary>Its consumer group.</summary>
    public string? GroupId { get; }

    public long CommittedTransactions => Interlocked.Read(ref _committedTransactions);

    public long CommittedRecords => Interlocked.Read(ref _committedRecords);

    /// <summary>How long the oldest record taken and not committed yet has waited, or zero.</summary>
    public TimeSpan UncommittedFor =>
        Interlocked.Read(ref _uncommittedSince) is var since and not NoTimestamp ? _time.GetElapsedTime(since) : TimeSpan.Zero;

    /// <inheritdoc cref="ConsumerLag.StalledFor"/>
    public TimeSpan StalledFor => _lag.StalledFor;

    /// <summary>Registers the lag gauge's source for as long as the processor runs.</summary>
    public IDisposable ObserveLag() => _instrumentation.AddLagSource(_lag.Observe);

    /// <summary>The concurrent handling's gauges (in flight, buffered, deepest lane), fed for as long as the processor runs.</summary>
    public void ObserveConcurrency(Func<long> inFlight, Func<long> buffered, Func<long> laneHighWater) =>
        _concurrency = [(_instrumentation.ProcessorInFlight, inFlight), (_instrumentation.ProcessorBuffered, buffered), (_instrumentation.ProcessorLaneHighWater, laneHighWater)];

    /// <summary>Registers the concurrent handling's gauges, when there is concurrent handling.</summary>
    public IDisposable? ObserveConcurrencyGauges() => _concurrency is { } gauges
        ? new Registrations([.. gauges.Select(g => g.Gauge.Add(() => new Measurement<long>(g.Read(), _tags)))])
        : null;

    /// <summary>A concurrent batch's barrier ended after this long (every handler call of the batch completed).</summary>
    public void BarrierWaited(TimeSpan waited) => _instrumentation.ProcessorBarrierWait.Record(waited.TotalSeconds, _tags);

    public void RefreshLag(IConsumer<byte[]?, byte[]?> consumer, long now) => _lag.Refresh(consumer, now);

    public void ConsumerClosed()
    {
        _lag.Clear();
        _consumerConnection.Close();
    }

    // ---------------------------------------------------------------- life

    public void Started(IEnumerable<string> topics, string groupId) => Log.ProcessorStarted(_logger, Name, Id, string.Join(",", topics), groupId);

    public void Stopped(ProcessorState state) => Log.ProcessorStopped(_logger, Name, Id, state, CommittedTransactions, CommittedRecords);

    public void JoinRefused(string? instanceId, TimeSpan delay, int attempt) => Log.JoinRefusedInstanceIdHeld(_logger, Name, instanceId, (long)delay.TotalMilliseconds, attempt);

    public void InitRetry(TimeSpan delay, Exception e) => Log.ProcessorInitRetry(_logger, Name, Id, (long)delay.TotalMilliseconds, e);

    public void Fenced(Exception e) => Log.ProcessorFenced(_logger, Name, Id, e);

    public void Failed(Exception e) => Log.ProcessorFailed(_logger, Name, Id, e);

    /// <summary>An error of the consumer; connection failures are logged once per change of state, not per attempt.</summary>
    public void ConsumerError(Error error)
    {
        if (!_consumerConnection.OnError(error))
        {
            Log.ConsumerError(_logger, Name, error.Code, error.Reason, error.IsFatal);
        }
    }

    public void ConsumerLog(LogMessage message)
    {
        var level = _consumerConnection.LevelOf(message);
        if (_logger.IsEnabled(level))
        {
            Log.ClientLog(_logger, level, Name, message.Facility, message.Message);
        }
    }

    // ---------------------------------------------------------------- records

    /// <summary>A record was taken: from now on it waits for a commit (a handler that hangs on it counts too).</summary>
    public void RecordTaken()
    {
        _consumerConnection.Answered(); // a record arrived: the consumer reaches its brokers
        if (Interlocked.Read(ref _uncommittedSince) == NoTimestamp)
        {
            Interlocked.Exchange(ref _uncommittedSince, _time.GetTimestamp());
        }
    }

    public void RecordHandled() => _instrumentation.ProcessorRecordsHandled.Add(1, _tags);

    public void HandlerFailed(RecordKey key, int attempts, int maxAttempts, Exception e) =>
        Log.HandlerFailed(_logger, Name, key.Topic, key.Partition, key.Offset, attempts, maxAttempts, e);

    public void DeadLettered(RecordKey key, RecordFailure failure, string deadLetterTopic)
    {
        _instrumentation.ProcessorRecordsDeadLettered.Add(1, _tags);
        Log.DeadLettered(_logger, Name, key.Topic, key.Partition, key.Offset, failure.Attempts, deadLetterTopic, failure.LastError);
    }

    public void PoisonSkipped(RecordKey key, RecordFailure failure)
    {
        _instrumentation.ProcessorRecordsSkipped.Add(1, _tags);
        Log.PoisonSkipped(_logger, Name, key.Topic, key.Partition, key.Offset, failure.Attempts, failure.LastError);
    }

    public void HandlerCallAbandoned(RecordKey key, TimeSpan ranFor, TimeSpan ignoredCancellationFor, string why) =>
        Log.HandlerCallAbandoned(_logger, Name, key.Topic, key.Partition, key.Offset, (long)ranFor.TotalMilliseconds, (long)ignoredCancellationFor.TotalMilliseconds, why);

    public void AbandonedCallEnded(RecordKey key, TimeSpan ranFor, Exception? scopeDisposeError) =>
        Log.AbandonedCallEnded(_logger, Name, key.Topic, key.Partition, key.Offset, (long)ranFor.TotalMilliseconds, scopeDisposeError);

    public void PoisonStopped(RecordKey key, RecordFailure failure) =>
        Log.PoisonStopped(_logger, Name, key.Topic, key.Partition, key.Offset, failure.Attempts, failure.LastError);

    // ---------------------------------------------------------------- transactions

    public void BatchCommitted(int records)
    {
        Interlocked.Exchange(ref _uncommittedSince, NoTimestamp);
        _instrumentation.ProcessorBatchesCommitted.Add(1, _tags);
        Interlocked.Increment(ref _committedTransactions);
        Interlocked.Add(ref _committedRecords, records);
    }

    public void CommittingEarly(TimeSpan age) => Log.CommittingEarly(_logger, Name, Id, (long)age.TotalMilliseconds);

    public void CommitFailed(TransactionErrorKind kind, int records, Exception e) => Log.CommitFailed(_logger, Name, Id, kind, records, e);

    public void RegistryUnavailable(int records, Exception e) => Log.ProcessorRegistryUnavailable(_logger, Name, Id, records, e);

    public void OffsetsNotSentInTime(int records, TimeSpan age) => Log.ProcessorOffsetsNotSentInTime(_logger, Name, Id, records, (long)age.TotalMilliseconds);

    public void WaitingForGroupCoordinator() => Log.ProcessorWaitingForGroupCoordinator(_logger, Name, GroupId);

    public void GroupCoordinatorAnswered(TimeSpan waited) => Log.ProcessorGroupCoordinatorAnswered(_logger, Name, GroupId, (long)waited.TotalMilliseconds);

    public void CommitOutcomeUnknown(int records, Exception e) => Log.ProcessorCommitOutcomeUnknown(_logger, Name, Id, records, e);

    public void SettleDeferred(Exception e) => Log.ProcessorSettleDeferred(_logger, Name, Id, e);

    public void ShutdownCommitFailed(Exception e) => Log.ShutdownCommitFailed(_logger, Name, Id, e);

    public void Aborting(string reason) => Log.ProcessorAborting(_logger, Name, Id, reason);

    public void AbortIncomplete(Exception e) => Log.ProcessorAbortIncomplete(_logger, Name, Id, e);

    // ---------------------------------------------------------------- rewinds and rebalances

    public void Rewound(List<TopicPartitionOffset> targets, int fetched)
    {
        _instrumentation.ProcessorRewinds.Add(1, _tags);
        Log.Rewound(_logger, Name, string.Join(", ", targets.Select(t => t.ToString())), fetched);
    }

    public void RewindFailed(KafkaException e) => Log.RewindFailed(_logger, Name, Id, e);

    public void SeekSkipped(TopicPartition partition, KafkaException e) => Log.SeekSkipped(_logger, Name, partition.ToString(), e.Error.Reason);

    public void PartitionsAssigned(IReadOnlyList<TopicPartition> partitions) => Log.PartitionsAssigned(_logger, Name, string.Join(", ", partitions));

    public void PartitionsRevoked(IReadOnlyList<TopicPartitionOffset> partitions, bool inTransaction) =>
        Log.PartitionsRevoked(_logger, Name, string.Join(", ", partitions.Select(p => p.TopicPartition)), inTransaction);

    public void PartitionsLost(IReadOnlyList<TopicPartitionOffset> partitions, bool inTransaction) =>
        Log.PartitionsLost(_logger, Name, string.Join(", ", partitions.Select(p => p.TopicPartition)), inTransaction);

    // ---------------------------------------------------------------- spans

    /// <summary>What a batch ended with: the value of the <c>kafkatx.batch.outcome</c> tag.</summary>
    public static class BatchOutcome
    {
        public const string Committed = "committed";
        public const string Aborted = "aborted";
        public const string OutcomeUnknown = "outcome_unknown";
        public const string Fenced = "fenced";
        public const string Faulted = "faulted";
        public const string NotStarted = "not_started";
    }

    /// <summary>The batch's span, started before the transaction begins so that the unit's transaction span is its child.</summary>
    public Activity? StartBatch()
    {
        var source = _instrumentation.ActivitySource;
        if (!source.HasListeners())
        {
            return null;
        }

        return TagAsProcessing(source.StartActivity(KafkaTxInstrumentation.BatchSpan, ActivityKind.Consumer))?.SetTag("kafkatx.transactional_id", Id);
    }

    public static void EndBatch(Activity? batch, int records, string outcome)
    {
        if (batch is null)
        {
            return;
        }

        batch.SetTag("messaging.batch.message_count", records);
        batch.SetTag("kafkatx.batch.outcome", outcome);
        if (outcome is not (BatchOutcome.Committed or BatchOutcome.Aborted))
        {
            batch.SetStatus(ActivityStatusCode.Error, outcome);
        }

        batch.Stop();
    }

    /// <summary>
    /// The span of one handled record: a child of the trace the record carries (its producer's), linked to the batch
    /// span; or, when it carries none, a child of the batch span. Current while the handler runs, so that the records
    /// the handler writes carry the same trace.
    /// </summary>
    public Activity? StartRecord(ConsumeResult<byte[]?, byte[]?> result, Activity? batchActivity)
    {
        var source = _instrumentation.ActivitySource;
        if (!source.HasListeners())
        {
            return null;
        }

        var batch = batchActivity?.Context ?? default;
        ActivityContext parent;
        ActivityLink[]? links = null;
        if (TraceContextHeaders.TryExtract(result.Message.Headers, out var remote))
        {
            parent = remote;
            if (batch != default)
            {
                links = [new ActivityLink(batch)];
            }
        }
        else
        {
            parent = batch;
        }

        var activity = TagAsProcessing(source.StartActivity(KafkaTxInstrumentation.ProcessSpan, ActivityKind.Consumer, parent, links: links));
        if (activity is not null)
        {
            activity.SetTag("messaging.destination.name", result.Topic);
            activity.SetTag("messaging.destination.partition.id", result.Partition.Value.ToString(CultureInfo.InvariantCulture));
            activity.SetTag("messaging.kafka.offset", result.Offset.Value);
        }

        return activity;
    }

    public static void RecordFailed(Activity? activity, Exception failure)
    {
        if (activity is null)
        {
            return;
        }

        activity.AddException(failure);
        activity.SetStatus(ActivityStatusCode.Error, failure.Message);
        activity.Stop();
    }

    /// <summary>The tags the processor's spans share with its metrics, and the messaging operation.</summary>
    private Activity? TagAsProcessing(Activity? activity)
    {
        if (activity is not null)
        {
            foreach (var tag in _tags)
            {
                activity.SetTag(tag.Key, tag.Value);
            }

            activity.SetTag("messaging.operation.type", "process");
        }

        return activity;
    }

    private sealed class Registrations(IDisposable[] registrations) : IDisposable
    {
        public void Dispose()
        {
            foreach (var registration in registrations)
            {
                registration.Dispose();
            }
        }
    }
}
