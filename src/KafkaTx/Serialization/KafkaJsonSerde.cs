using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Confluent.Kafka;

namespace KafkaTx;

/// <summary>
/// JSON keys and values with System.Text.Json, both ways: register it with <c>AddSerializer</c> for the records a
/// transaction writes and with <c>AddDeserializer</c> for the records a processor reads. Thread-safe.
/// </summary>
/// <remarks>
/// <para>For trimmed or native AOT applications, pass the source-generated metadata
/// (<c>new KafkaJsonSerde&lt;Order&gt;(ShopJsonContext.Default.Order)</c>); the other constructors use reflection
/// unless the options carry a source-generated <see cref="JsonSerializerOptions.TypeInfoResolver"/>.</para>
/// <para>A null key or value is Kafka's null both ways: <see langword="null"/> serializes to no bytes (a tombstone),
/// and no bytes deserialize to <see langword="null"/> (or fail for a non-nullable value type). When a processor's
/// record cannot be deserialized, the record fails as if its handler had thrown, with a
/// <see cref="ConsumeException"/> naming its topic, partition, offset and the type, and the
/// <see cref="JsonException"/> inside; it is retried and then dead-lettered as the processor's options say.</para>
/// </remarks>
/// <typeparam name="T">The key or value type.</typeparam>
public sealed class KafkaJsonSerde<T> : ISerializer<T>, IDeserializer<T>
{
    private readonly JsonTypeInfo<T> _typeInfo;

    /// <summary>Creates a serde with <see cref="JsonSerializerOptions.Web"/>: camelCase names, case-insensitive reading, numbers read from strings too, as ASP.NET Core.</summary>
    [RequiresUnreferencedCode("Reflection-based JSON: use the constructor taking a source-generated JsonTypeInfo<T> in trimmed or AOT applications.")]
    [RequiresDynamicCode("Reflection-based JSON: use the constructor taking a source-generated JsonTypeInfo<T> in trimmed or AOT applications.")]
    public KafkaJsonSerde()
        : this(JsonSerializerOptions.Web)
    {
    }

    /// <summary>Creates a serde with the given options (made read-only, as System.Text.Json does at first use).</summary>
    /// <param name="options">The options; with a source-generated <see cref="JsonSerializerOptions.TypeInfoResolver"/>, no reflection is used.</param>
    /// <exception cref="NotSupportedException">The options cannot describe <typeparamref name="T"/> (for example a source-generated resolver without it): System.Text.Json's message says why.</exception>
    [RequiresUnreferencedCode("Without a source-generated TypeInfoResolver the options use reflection: use the constructor taking a JsonTypeInfo<T> in trimmed or AOT applications.")]
    [RequiresDynamicCode("Without a source-generated TypeInfoResolver the options use reflection: use the constructor taking a JsonTypeInfo<T> in trimmed or AOT applications.")]
    public KafkaJsonSerde(JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.MakeReadOnly(populateMissingResolver: true);
        _typeInfo = (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T)); // now, so that a type the options cannot describe fails at registration
    }

    /// <summary>Creates a serde from source-generated metadata, for example <c>ShopJsonContext.Default.Order</c>: no reflection, trimming- and AOT-safe.</summary>
    /// <param name="typeInfo">The type's metadata.</param>
    public KafkaJsonSerde(JsonTypeInfo<T> typeInfo)
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        _typeInfo = typeInfo;
    }

    /// <summary>Serializes a key or value to UTF-8 JSON; <see langword="null"/> to no bytes (Kafka's null).</summary>
    /// <param name="data">The key or value.</param>
    /// <param name="context">The topic and whether it is the key or the value.</param>
    /// <returns>The UTF-8 JSON, or <see langword="null"/>.</returns>
    public byte[] Serialize(T data, SerializationContext context) =>
        data is null ? null! : JsonSerializer.SerializeToUtf8Bytes(data, _typeInfo);

    /// <summary>Deserializes UTF-8 JSON; no bytes (Kafka's null) to <see langword="null"/>.</summary>
    /// <param name="data">The bytes.</param>
    /// <param name="isNull">Whether the key or value is Kafka's null.</param>
    /// <param name="context">The topic and whether it is the key or the value.</param>
    /// <returns>The key or value.</returns>
    /// <exception cref="JsonException">The bytes are not JSON for <typeparamref name="T"/>.</exception>
    /// <exception cref="InvalidDataException">The key or value is null and <typeparamref name="T"/> is a non-nullable value type.</exception>
    public T Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context)
    {
        if (isNull)
        {
            return default(T) is null
                ? default!
                : throw new InvalidDataException($"The {(context.Component == MessageComponentType.Key ? "key" : "value")} is null, which {typeof(T).Name} cannot hold: declare the handler's type as {typeof(T).Name}? to accept records without one.");
        }

        return JsonSerializer.Deserialize(data, _typeInfo)!;
    }
}
