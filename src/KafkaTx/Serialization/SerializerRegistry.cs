using Confluent.Kafka;

namespace KafkaTx.Serialization;

/// <summary>
/// Serializers by type, so that one transaction can write keys and values of different types to different topics
/// through a single byte-array producer. Confluent.Kafka's built-in serializers are registered up front.
/// </summary>
internal sealed class SerializerRegistry
{
    private readonly Dictionary<Type, object> _serializers = new()
    {
        [typeof(string)] = Serializers.Utf8,
        [typeof(Null)] = Serializers.Null,
        [typeof(int)] = Serializers.Int32,
        [typeof(long)] = Serializers.Int64,
        [typeof(float)] = Serializers.Single,
        [typeof(double)] = Serializers.Double,
        [typeof(byte[])] = Serializers.ByteArray,
    };

    public void Add<T>(ISerializer<T> serializer)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        _serializers[typeof(T)] = serializer;
    }

    public void CopyTo(SerializerRegistry other)
    {
        foreach (var (type, serializer) in _serializers)
        {
            other._serializers[type] = serializer;
        }
    }

    /// <summary>Serializes a key or value. Byte arrays pass through untouched, as in Confluent.Kafka.</summary>
    public byte[]? Serialize<T>(T data, in SerializationContext context)
    {
        if (typeof(T) == typeof(byte[]))
        {
            return (byte[]?)(object?)data;
        }

        if (!_serializers.TryGetValue(typeof(T), out var serializer))
        {
            throw new InvalidOperationException(
                $"No serializer is registered for {typeof(T).FullName} ({context.Component} of a record for topic '{context.Topic}'). " +
                $"Register one with builder.AddSerializer<{typeof(T).Name}>(...) when calling AddKafkaTransactions, or pass the {context.Component.ToString().ToLowerInvariant()} as string or byte[].");
        }

        return ((ISerializer<T>)serializer).Serialize(data, context);
    }
}
