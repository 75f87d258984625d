using System.Text.Json;
using Confluent.Kafka;

namespace AtomicMultiTopicWrites;

/// <summary>Serializes event records as JSON. Registered once per type with AddSerializer.</summary>
public sealed class JsonSerializer<T> : ISerializer<T>
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);

    public byte[] Serialize(T data, SerializationContext context) => JsonSerializer.SerializeToUtf8Bytes(data, Options);
}
