using Confluent.Kafka;

namespace KafkaTx.UnitOfWork;

/// <summary>A record serialized by ProduceAsync, not yet written: its bytes, headers, timestamp, and the transaction it was serialized in.</summary>
internal readonly record struct SerializedRecord(byte[]? Key, byte[]? Value, Headers? Headers, Timestamp Timestamp, long Transaction);

/// <summary>
/// ProduceAsync in two steps, for a scope that must check between them that it may still write (a concurrent handler
/// call, which may not write once it returned): serialize (awaiting), then write the bytes.
/// </summary>
internal interface ISerializingUnit
{
    /// <summary>Whether both types serialize without awaiting (then Produce is ProduceAsync's whole work).</summary>
    bool SerializesSynchronously<TKey, TValue>();

    /// <summary>
    /// Serializes the record for the open transaction, awaiting asynchronous serializers; refused if the open one is no
    /// longer <paramref name="transaction"/> (the caller's call ended with it, and the next one has begun).
    /// </summary>
    ValueTask<SerializedRecord> SerializeAsync<TKey, TValue>(string topic, Message<TKey, TValue> message, long transaction, CancellationToken cancellationToken);

    /// <summary>The open transaction's number (see <see cref="SerializedRecord.Transaction"/>).</summary>
    long Transaction { get; }

    /// <summary>ProduceAsync calls of the open transaction begun and not yet written or failed.</summary>
    int WritesInFlight { get; }

    /// <summary>Writes a serialized record, if the transaction it was serialized in is still open.</summary>
    void Produce(string topic, TopicPartition? topicPartition, in SerializedRecord record);

    /// <summary>
    /// A ProduceAsync of <paramref name="transaction"/> refused before it began, because it came too late (its handler
    /// call had returned): that transaction, if still open, may not commit without the record.
    /// </summary>
    void RefuseLate(long transaction);

    /// <summary>A serialized record refused because it came too late, not written: its transaction, if still open, may not commit.</summary>
    void RefuseLate(in SerializedRecord record);
}
