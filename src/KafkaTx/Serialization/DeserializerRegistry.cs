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

    public T Deserialize<T>(byte[]? data, in SerializationContext context)
    {
        if (!_deserializers.TryGetValue(typeof(T), out var deserializer))
        {
            throw new InvalidOperationException(
                $"No deserializer is registered for {typeof(T).FullName} ({context.Component} of records from topic '{context.Topic}'). Register one with builder.AddDeserializer<{typeof(T).Name}>(...).");
        }

        return ((IDeserializer<T>)deserializer).Deserialize(data, data is null, context);
    }
}
