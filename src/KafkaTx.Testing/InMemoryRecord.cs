using System.Text;
using Confluent.Kafka;

namespace KafkaTx.Testing;

/// <summary>A record as stored by an <see cref="InMemoryKafkaCluster"/>, or as read from a broker by <see cref="KafkaTopicReader"/>, for assertions.</summary>
public sealed class InMemoryRecord
{
    internal InMemoryRecord(TopicPartition partition, long offset, byte[]? key, byte[]? value, Headers? headers, Timestamp timestamp)
    {
        TopicPartition = partition;
        Offset = offset;
        Key = key;
        Value = value;
        Headers = headers;
        Timestamp = timestamp;
    }

    /// <summary>The topic and partition.</summary>
    public TopicPartition TopicPartition { get; }

    /// <summary>The record's offset.</summary>
    public long Offset { get; }

    /// <summary>The serialized key.</summary>
    public byte[]? Key { get; }

    /// <summary>The serialized value.</summary>
    public byte[]? Value { get; }

    /// <summary>The headers.</summary>
    public Headers? Headers { get; }

    /// <summary>The timestamp given by the producer.</summary>
    public Timestamp Timestamp { get; }

    /// <summary>The key as UTF-8 text.</summary>
    public string? KeyText => Key is null ? null : Encoding.UTF8.GetString(Key);

    /// <summary>The value as UTF-8 text.</summary>
    public string? ValueText => Value is null ? null : Encoding.UTF8.GetString(Value);

    /// <inheritdoc />
    public override string ToString() => $"{TopicPartition}@{Offset}: {KeyText} = {ValueText}";
}
