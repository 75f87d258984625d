using Confluent.Kafka;

namespace KafkaTx.Serialization;

/// <summary>
/// Serializers by type, so that one transaction can write keys and values of different types to different topics
/// through a single byte-array producer. Confluent.Kafka's built-in serializers are registered up front. A type's
/// serializer is synchronous (<see cref="ISerializer{T}"/>) or asynchronous (<see cref="IAsyncSerializer{T}"/>, such as
/// Confluent's Schema Registry serdes): the latter only through ProduceAsync, which awaits it before the record enters
/// the transaction; the synchronous Produce refuses it rather than block a thread on it.
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

    public void Add<T>(IAsyncSerializer<T> serializer)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        _serializers[typeof(T)] = serializer;
    }

    /// <summary>Whether <typeparamref name="T"/> serializes without awaiting: a synchronous serializer, byte[], or none registered (which the synchronous path reports).</summary>
    public bool IsSynchronous<T>() =>
        typeof(T) == typeof(byte[]) || !_serializers.TryGetValue(typeof(T), out var serializer) || serializer is ISerializer<T>;

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

        return Find<T>(context) switch
        {
            ISerializer<T> serializer => serializer.Serialize(data, context),
            _ => throw new NotUsableException(
                $"The serializer registered for {typeof(T).FullName} ({context.Component} of a record for topic '{context.Topic}') is asynchronous (IAsyncSerializer<{typeof(T).Name}>): " +
                "write the record with await scope.ProduceAsync(...), which serializes before the record enters the transaction. Produce does not block a thread on an asynchronous serializer."),
        };
    }

    /// <summary>
    /// Serializes a key or value with its serializer, synchronous or asynchronous. Byte arrays pass through untouched.
    /// </summary>
    public ValueTask<byte[]?> SerializeAsync<T>(T data, SerializationContext context)
    {
        if (typeof(T) == typeof(byte[]))
        {
            return ValueTask.FromResult((byte[]?)(object?)data);
        }

        return Find<T>(context) switch
        {
            ISerializer<T> serializer => ValueTask.FromResult<byte[]?>(serializer.Serialize(data, context)),
            var serializer => AwaitAsync(((IAsyncSerializer<T>)serializer).SerializeAsync(data, context)),
        };

        static async ValueTask<byte[]?> AwaitAsync(Task<byte[]> serializing) => await serializing.ConfigureAwait(false);
    }

    private object Find<T>(in SerializationContext context)
    {
        if (!_serializers.TryGetValue(typeof(T), out var serializer))
        {
            throw new NotUsableException(
                $"No serializer is registered for {typeof(T).FullName} ({context.Component} of a record for topic '{context.Topic}'). " +
                $"Register one with builder.AddSerializer<{typeof(T).Name}>(...) when calling AddKafkaTransactions, or pass the {context.Component.ToString().ToLowerInvariant()} as string or byte[].");
        }

        return serializer;
    }

    /// <summary>
    /// The registry's own refusal (no serializer for the type, or an asynchronous one for Produce): a mistake in the
    /// code, not a failure of the record, so it propagates as it is rather than as the record's rejection.
    /// </summary>
    internal sealed class NotUsableException(string message) : InvalidOperationException(message);
}
