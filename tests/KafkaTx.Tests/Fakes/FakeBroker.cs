using Confluent.Kafka;

namespace KafkaTx.Tests.Fakes;

internal sealed record FakeRecord(long Offset, byte[]? Key, byte[]? Value, long NextPosition, Headers? Headers = null);

/// <summary>
/// Input partitions and a consumer group's committed offsets, shared by fake consumers and producers: offsets sent
/// in a transaction take effect only when the fake producer commits it, as in Kafka.
/// </summary>
internal sealed class FakeBroker
{
    private readonly object _lock = new();
    private readonly Dictionary<TopicPartition, List<FakeRecord>> _logs = [];
    private readonly Dictionary<TopicPartition, long> _groupOffsets = [];

    public List<string> Events { get; } = [];

    /// <summary>Appends a record. <paramref name="gapAfter"/> leaves offsets unused after it, as a transaction marker does.</summary>
    public void Append(string topic, int partition, string? key, string? value, int gapAfter = 0, Headers? headers = null)
    {
        lock (_lock)
        {
            var tp = new TopicPartition(topic, partition);
            if (!_logs.TryGetValue(tp, out var log))
            {
                _logs[tp] = log = [];
            }

            var offset = log.Count == 0 ? 0 : log[^1].NextPosition;
            log.Add(new FakeRecord(offset, Bytes(key), Bytes(value), offset + 1 + gapAfter, headers));
            Monitor.PulseAll(_lock);
        }
    }

    public void AppendMany(string topic, int partition, int count)
    {
        for (var i = 0; i < count; i++)
        {
            Append(topic, partition, $"k{i}", $"v{i}");
        }
    }

    /// <summary>The offset the next record appended to the partition gets.</summary>
    public long HighWatermark(TopicPartition tp)
    {
        lock (_lock)
        {
            return _logs.TryGetValue(tp, out var log) && log.Count > 0 ? log[^1].NextPosition : 0;
        }
    }

    public FakeRecord? RecordAtOrAfter(TopicPartition tp, long position)
    {
        lock (_lock)
        {
            return _logs.TryGetValue(tp, out var log) ? log.FirstOrDefault(r => r.Offset >= position) : null;
        }
    }

    /// <summary>Waits until something changes or the timeout passes, as a real Consume waits for data.</summary>
    public void WaitForChange(TimeSpan timeout)
    {
        lock (_lock)
        {
            Monitor.Wait(_lock, timeout);
        }
    }

    public void Signal()
    {
        lock (_lock)
        {
            Monitor.PulseAll(_lock);
        }
    }

    public void CommitGroupOffsets(IEnumerable<TopicPartitionOffset> offsets)
    {
        lock (_lock)
        {
            foreach (var offset in offsets)
            {
                _groupOffsets[offset.TopicPartition] = offset.Offset.Value;
            }

            Events.Add("offsets:" + string.Join(",", offsets.Select(o => $"{o.Partition.Value}@{o.Offset.Value}")));
        }
    }

    public long? GroupOffset(TopicPartition tp)
    {
        lock (_lock)
        {
            return _groupOffsets.TryGetValue(tp, out var offset) ? offset : null;
        }
    }

    public void Record(string @event)
    {
        lock (_lock)
        {
            Events.Add(@event);
        }
    }

    public List<string> EventsSnapshot()
    {
        lock (_lock)
        {
            return [.. Events];
        }
    }

    private static byte[]? Bytes(string? text) => text is null ? null : System.Text.Encoding.UTF8.GetBytes(text);
}
