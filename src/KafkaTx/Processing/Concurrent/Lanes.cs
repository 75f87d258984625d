using Confluent.Kafka;

namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// An ordering lane: records of one lane are handled one after another, in the order they were consumed; records of
/// different lanes concurrently. Key order: one lane per topic and key (records without a key: per partition).
/// Partition order: one per partition. Unordered: one per record.
/// </summary>
internal readonly struct LaneId : IEquatable<LaneId>
{
    private readonly string _topic;
    private readonly int _partition;   // -1: the key alone decides
    private readonly long _offset;     // -1 unless unordered
    private readonly byte[]? _key;
    private readonly int _hash;

    private LaneId(string topic, int partition, long offset, byte[]? key)
    {
        _topic = topic;
        _partition = partition;
        _offset = offset;
        _key = key;
        var hash = default(HashCode); // not the topic: hashing its name per record costs more than the rare collision it avoids
        hash.Add(partition);
        hash.Add(offset);
        if (key is not null)
        {
            hash.AddBytes(key);
        }

        _hash = hash.ToHashCode();
    }

    /// <summary>The lane of a consumed record under the given order.</summary>
    public static LaneId Of(ProcessingOrder order, ConsumeResult<byte[]?, byte[]?> result) => order switch
    {
        ProcessingOrder.Key when result.Message.Key is { } key => new LaneId(result.Topic, -1, -1, key),
        ProcessingOrder.Unordered => new LaneId(result.Topic, result.Partition.Value, result.Offset.Value, null),
        _ => new LaneId(result.Topic, result.Partition.Value, -1, null), // by partition, and key order's null keys
    };

    public bool Equals(LaneId other) =>
        _hash == other._hash && _partition == other._partition && _offset == other._offset
        && string.Equals(_topic, other._topic, StringComparison.Ordinal)
        && (_key is null ? other._key is null : other._key is not null && _key.AsSpan().SequenceEqual(other._key));

    public override bool Equals(object? obj) => obj is LaneId other && Equals(other);

    public override int GetHashCode() => _hash;
}

/// <summary>
/// A record consumed and not handled yet: waiting in its lane, or in flight (held by its <see cref="HandlerCall"/>). A
/// value, not an object: a record dispatched as it is read allocates nothing of its own.
/// </summary>
internal readonly struct BufferedRecord(ConsumeResult<byte[]?, byte[]?> raw, LaneId lane)
{
    public ConsumeResult<byte[]?, byte[]?> Raw { get; } = raw;

    public RecordKey Key => RecordKey.Of(Raw);

    public LaneId Lane { get; } = lane;
}
