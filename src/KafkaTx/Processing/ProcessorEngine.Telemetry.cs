using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Confluent.Kafka;
using KafkaTx.Telemetry;

namespace KafkaTx.Processing;

/// <summary>
/// The processor's spans (one per batch, one per handled record, the record's own trace as parent) and its consumer
/// lag gauge. With no listener on the KafkaTx source no span is created and no header is read.
/// </summary>
internal sealed partial class ProcessorEngine<TKey, TValue>
{
    private static readonly TimeSpan LagRefreshInterval = TimeSpan.FromSeconds(1);

    private Activity? _batchActivity;
    private volatile PartitionLag[] _lag = [];
    private long _lagRefreshedAt;
    private Dictionary<TopicPartition, PartitionProgress> _progress = [];
    private long _stalledSince = NoTimestamp;

    /// <summary>
    /// How long records that arrived in an assigned partition have waited without the processor's position moving,
    /// or zero. An idle partition does not count (nothing arrived), whatever its lag; nor does one being consumed.
    /// For health checks: it reveals a processor stuck before its handler (a rewind that keeps failing, say).
    /// </summary>
    public TimeSpan StalledFor => ElapsedSince(ref _stalledSince);

    /// <summary>What a batch ended with: the value of the <c>kafkatx.batch.outcome</c> tag.</summary>
    private static class BatchOutcome
    {
        public const string Committed = "committed";
        public const string Aborted = "aborted";
        public const string OutcomeUnknown = "outcome_unknown";
        public const string Fenced = "fenced";
        public const string Faulted = "faulted";
        public const string NotStarted = "not_started";
    }

    private void StartBatchActivity()
    {
        var source = _instrumentation.ActivitySource;
        if (!source.HasListeners())
        {
            return;
        }

        _batchActivity = source.StartActivity(KafkaTxInstrumentation.BatchSpan, ActivityKind.Consumer);
        TagAsProcessing(_batchActivity)?.SetTag("kafkatx.transactional_id", Id);
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

    private void EndBatchActivity(string outcome)
    {
        if (_batchActivity is not { } batch)
        {
            return;
        }

        _batchActivity = null;
        batch.SetTag("messaging.batch.message_count", _processed.Count);
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
    private Activity? StartRecordActivity(ConsumeResult<byte[]?, byte[]?> result)
    {
        var source = _instrumentation.ActivitySource;
        if (!source.HasListeners())
        {
            return null;
        }

        var batch = _batchActivity?.Context ?? default;
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

    private static void EndRecordActivity(Activity? activity, Exception failure)
    {
        if (activity is null)
        {
            return;
        }

        activity.AddException(failure);
        activity.SetStatus(ActivityStatusCode.Error, failure.Message);
        activity.Stop();
    }

    // ---------------------------------------------------------------- consumer lag

    /// <summary>
    /// Recomputes the lag of the assigned partitions (high watermark minus position) at most once a second, from what
    /// the consumer already knows: no request is sent. The gauge reads the last snapshot.
    /// </summary>
    private void RefreshLag(long now)
    {
        if ((_lagRefreshedAt != 0 && _time.GetElapsedTime(_lagRefreshedAt, now) < LagRefreshInterval) || _consumer is not { } consumer)
        {
            return;
        }

        _lagRefreshedAt = now;
        var assignment = consumer.Assignment;
        var lag = new List<PartitionLag>(assignment.Count);
        var progress = new Dictionary<TopicPartition, PartitionProgress>(assignment.Count);
        var stalledSince = NoTimestamp;
        foreach (var partition in assignment)
        {
            var position = consumer.Position(partition).Value;
            var high = consumer.GetWatermarkOffsets(partition).High.Value;
            if (position < 0 || high < 0)
            {
                continue;
            }

            lag.Add(new PartitionLag(partition, Math.Max(0, high - position)));
            var seen = _progress.TryGetValue(partition, out var before) ? before.Next(position, high, now) : new PartitionProgress(position, high, NoTimestamp);
            progress[partition] = seen;
            if (seen.WaitingSince != NoTimestamp && (stalledSince == NoTimestamp || seen.WaitingSince < stalledSince))
            {
                stalledSince = seen.WaitingSince;
            }
        }

        _lag = [.. lag];
        _progress = progress;
        Interlocked.Exchange(ref _stalledSince, stalledSince);
    }

    /// <summary>For the lag gauge: one measurement per assigned partition whose lag is known.</summary>
    private IEnumerable<Measurement<long>> ObserveLag()
    {
        foreach (var partition in _lag)
        {
            yield return new Measurement<long>(partition.Lag,
            [
                .. _tags,
                new("messaging.destination.name", partition.TopicPartition.Topic),
                new("messaging.destination.partition.id", partition.TopicPartition.Partition.Value.ToString(CultureInfo.InvariantCulture)),
            ]);
        }
    }

    private readonly record struct PartitionLag(TopicPartition TopicPartition, long Lag);

    /// <summary>A partition's position and high watermark when last seen, and since when new records wait.</summary>
    private readonly record struct PartitionProgress(long Position, long High, long WaitingSince)
    {
        public PartitionProgress Next(long position, long high, long now) =>
            position != Position ? new(position, high, NoTimestamp)                      // consuming
            : high != High && high > position ? new(position, high, WaitingSince == NoTimestamp ? now : WaitingSince) // records arrived, none taken
            : this with { High = high };
    }
}
