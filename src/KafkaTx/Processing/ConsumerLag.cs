using System.Diagnostics.Metrics;
using System.Globalization;
using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// The consumer's lag per assigned partition (high watermark minus position), for the lag gauge, and since when
/// records that arrived have waited without the position moving, for health checks. Computed from what the consumer
/// already knows: no request is sent.
/// </summary>
/// <remarks>Refreshed on the processor's thread; the gauge and the health check read it from any thread.</remarks>
internal sealed class ConsumerLag(TimeProvider time, KeyValuePair<string, object?>[] tags)
{
    private const long NoTimestamp = long.MinValue;
    private static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(1);

    private volatile PartitionLag[] _lag = [];
    private long _refreshedAt;
    private Dictionary<TopicPartition, PartitionProgress> _progress = [];
    private long _stalledSince = NoTimestamp;

    /// <summary>
    /// How long records that arrived in an assigned partition have waited without the processor's position moving,
    /// or zero. An idle partition does not count (nothing arrived), whatever its lag; nor does one being consumed.
    /// </summary>
    public TimeSpan StalledFor =>
        Interlocked.Read(ref _stalledSince) is var since and not NoTimestamp ? time.GetElapsedTime(since) : TimeSpan.Zero;

    /// <summary>Recomputes the lag of the assigned partitions, at most once a second.</summary>
    public void Refresh(IConsumer<byte[]?, byte[]?> consumer, long now)
    {
        if (_refreshedAt != 0 && time.GetElapsedTime(_refreshedAt, now) < RefreshInterval)
        {
            return;
        }

        _refreshedAt = now;
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

    /// <summary>The consumer is gone: no partition has a lag any more.</summary>
    public void Clear() => _lag = [];

    /// <summary>For the lag gauge: one measurement per assigned partition whose lag is known.</summary>
    public IEnumerable<Measurement<long>> Observe()
    {
        foreach (var partition in _lag)
        {
            yield return new Measurement<long>(partition.Lag,
            [
                .. tags,
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
