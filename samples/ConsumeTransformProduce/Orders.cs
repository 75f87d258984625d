using System.Text.Json;
using Confluent.Kafka;

namespace ConsumeTransformProduce;

public sealed record Order(string OrderId, decimal Amount);

public sealed record ProcessedOrder(string OrderId, string Status, decimal Amount, decimal Tax);

public sealed record AuditEntry(string Action, string OrderId, DateTimeOffset At);

public sealed record LedgerUpdate(string OrderId, decimal Debit, decimal Credit);

/// <summary>JSON for every record type of the sample, both ways.</summary>
public sealed class Json<T> : ISerializer<T>, IDeserializer<T>
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);

    public byte[] Serialize(T data, SerializationContext context) => JsonSerializer.SerializeToUtf8Bytes(data, Options);

    public T Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context) =>
        isNull ? throw new InvalidDataException($"A record of {context.Topic} has no value.") : JsonSerializer.Deserialize<T>(data, Options)!;
}
