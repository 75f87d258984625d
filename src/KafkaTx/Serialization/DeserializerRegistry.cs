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

    /// <summary>Whether values of <paramref name="type"/> can be deserialized: a built-in or a registered deserializer.</summary>
    public bool Has(Type type) => _deserializers.ContainsKey(type);

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
    /// Deserializes a consumed record's key or value (as <paramref name="context"/> says) with a deserializer from
    /// <see cref="Resolve{T}"/>. For byte[] with the built-in deserializer, the consumed array itself: Confluent.Kafka's
    /// built-in would copy it, and the array, allocated for this record alone, is the processor's to hand over.
    /// </summary>
    /// <exception cref="ConsumeException">The deserializer failed: as Confluent.Kafka's consumer reports it
    /// (<see cref="ErrorCode.Local_KeyDeserialization"/> or <see cref="ErrorCode.Local_ValueDeserialization"/>), with a
    /// message naming the record (topic, partition, offset) and the type, and the deserializer's exception inside.</exception>
    public static T Deserialize<T>(IDeserializer<T> deserializer, ConsumeResult<byte[]?, byte[]?> record, in SerializationContext context)
    {
        var data = context.Component == MessageComponentType.Key ? record.Message.Key : record.Message.Value;
        if (typeof(T) == typeof(byte[]) && ReferenceEquals(deserializer, Deserializers.ByteArray))
        {
            return (T)(object?)data!;
        }

        try
        {
            return deserializer.Deserialize(data, data is null, context);
        }
        catch (Exception e)
        {
            throw DeserializationFailed<T>(record, context.Component, e);
        }
    }

    private static ConsumeException DeserializationFailed<T>(ConsumeResult<byte[]?, byte[]?> record, MessageComponentType component, Exception e)
    {
        var part = component == MessageComponentType.Key ? "key" : "value";
        var reason =
            $"Could not deserialize the {part} of the record at topic '{record.Topic}', partition {record.Partition.Value}, offset {record.Offset.Value} " +
            $"as {typeof(T).FullName ?? typeof(T).Name}: {e.GetType().Name}: {e.Message}";
        var code = component == MessageComponentType.Key ? ErrorCode.Local_KeyDeserialization : ErrorCode.Local_ValueDeserialization;
        return new ConsumeException(record, new Error(code, reason), e);
    }
}
