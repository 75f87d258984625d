using Confluent.Kafka;

namespace KafkaTx.Serialization;

/// <summary>Deserializers by type for the records a processor consumes; Confluent.Kafka's built-ins are registered up front.</summary>
internal sealed class DeserializerRegistry
{
    private readonly Dictionary<Type, object> _deserializers = new()
    {
        [typeof(string)] = Deserializers.Utf8,
        [typeof(Null)] = Deserializers.Null,
        [typeof(Ignore)] = Deserializers.Ignore,
        [typeof(int)] = Deserializers.Int32,
        [typeof(long)] = Deserializers.Int64,
        [typeof(float)] = Deserializers.Single,
        [typeof(double)] = Deserializers.Double,
        [typeof(byte[])] = Deserializers.ByteArray,
    };

    public void Add<T>(IDeserializer<T> deserializer)
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        _deserializers[typeof(T)] = deserializer;
    }

    /// <summary>The deserializer for <typeparamref name="T"/>, for a processor to look up once instead of per record.</summary>
    public IDeserializer<T> Resolve<T>(in SerializationContext context)
    {
        if (!_deserializers.TryGetValue(typeof(T), out var deserializer))
        {
            throw new InvalidOperationException(
                $"No deserializer is registered for {typeof(T).FullName} ({context.Component} of records from topic '{context.Topic}'). Register one with builder.AddDeserializer<{typeof(T).Name}>(...).");
        }

        return (IDeserializer<T>)deserializer;
    }

    /// <summary>
    /// Deserializes with a deserializer from <see cref="Resolve{T}"/>. For byte[] with the built-in deserializer, the
    /// consumed array itself: Confluent.Kafka's built-in would copy it, and the array, allocated for this record
    /// alone, is the processor's to hand over.
    /// </summary>
    public static T Deserialize<T>(IDeserializer<T> deserializer, byte[]? data, in SerializationContext context) =>
        typeof(T) == typeof(byte[]) && ReferenceEquals(deserializer, Deserializers.ByteArray)
            ? (T)(object?)data!
            : deserializer.Deserialize(data, data is null, context);
}
