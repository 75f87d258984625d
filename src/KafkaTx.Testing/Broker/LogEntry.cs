using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>One offset of a partition: a record, or a transaction marker (a control record). A struct, stored inline, to keep the garbage collector's work per record small.</summary>
internal readonly struct LogEntry(byte[]? key, byte[]? value, Headers? headers, Timestamp timestamp, TransactionRecord? transaction, ControlType control)
{
    public byte[]? Key { get; } = key;

    public byte[]? Value { get; } = value;

    public Headers? Headers { get; } = headers;

    public Timestamp Timestamp { get; } = timestamp;

    public TransactionRecord? Transaction { get; } = transaction;

    public ControlType Control { get; } = control;

    public InMemoryRecord ToRecord(TopicPartition partition, long offset) => new(partition, offset, Key, Value, Headers, Timestamp);
}
