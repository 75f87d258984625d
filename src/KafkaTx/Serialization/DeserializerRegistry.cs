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

    public void Add<T>(IAsyncDeserializer<T> deserializer)
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        _deserializers[typeof(T)] = deserializer;
    }

    /// <summary>Whether values of <paramref name="type"/> can be deserialized: a built-in or a registered deserializer.</summary>
    public bool Has(Type type) => _deserializers.ContainsKey(type);

    /// <summary>
    /// The deserializer for <typeparamref name="T"/>, for a processor to look up once instead of per record: an
    /// <see cref="IDeserializer{T}"/> or an <see cref="IAsyncDeserializer{T}"/>.
    /// </summary>
    public object Resolve<T>(in SerializationContext context)
    {
        if (!_deserializers.TryGetValue(typeof(T), out var deserializer))
        {
            throw new InvalidOperationException(
                $"No deserializer is registered for {typeof(T).FullName} ({context.Component} of records from topic '{context.Topic}'). Register one with builder.AddDeserializer<{typeof(T).Name}>(...).");
        }

        return deserializer;
    }

    /// <summary>
    /// Deserializes a consumed record's key or value (as <paramref name="context"/> says) with a deserializer from
    /// <see cref="Resolve{T}"/>. For byte[] with the built-in deserializer, the consumed array itself: Confluent.Kafka's
    /// built-in would copy it, and the array, allocated for this record alone, is the processor's to hand over.
    /// </summary>
    /// <exception cref="KafkaTransactionException">The deserializer could not reach the schema registry (Kind Retriable).</exception>
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

    /// <summary>
    /// Deserializes with an asynchronous deserializer, failing as <see cref="Deserialize{T}"/> does. The wait ends at
    /// <paramref name="limit"/>: a deserializer that has not answered by then (a schema registry too slow for the open
    /// transaction, which must end before its TransactionTimeout) fails as a registry that could not be reached; and
    /// when <paramref name="cancellationToken"/> is cancelled (OperationCanceledException). Either way the deserializer's
    /// own call is abandoned, its result unused. The limit is at least zero, or infinite when no transaction is open.
    /// </summary>
    public static async Task<T> DeserializeAsync<T>(IAsyncDeserializer<T> deserializer, ConsumeResult<byte[]?, byte[]?> record, SerializationContext context, TimeSpan limit, TimeProvider time, CancellationToken cancellationToken)
    {
        var data = context.Component == MessageComponentType.Key ? record.Message.Key : record.Message.Value;
        Task<T>? call = null;
        try
        {
            call = deserializer.DeserializeAsync(data, data is null, context);
            return await call.WaitAsync(limit, time, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            AbandonedSerdeCall.Observe(call);
            throw;
        }
        catch (TimeoutException) when (call is { IsCompleted: false })
        {
            AbandonedSerdeCall.Observe(call);
            throw DeserializationFailed<T>(record, context.Component, new TimeoutException(
                $"The deserializer had not answered after {limit.TotalSeconds:0.###} s, all the open transaction had left before its TransactionTimeout (less the margin its commit needs); a schema registry that slow is treated as unavailable"));
        }
        catch (Exception e)
        {
            throw DeserializationFailed<T>(record, context.Component, e);
        }
    }

    /// <summary>
    /// The failure of a deserializer, as the processor sees it: the record's own (a <see cref="ConsumeException"/>,
    /// retried and then poison), or, when the schema registry could not be reached or failed
    /// (<see cref="SerdeFailureClassifier"/>), a Retriable <see cref="KafkaTransactionException"/>: the processor backs
    /// off and reads the record again without counting an attempt, so nothing is dead-lettered for an outage.
    /// </summary>
    private static Exception DeserializationFailed<T>(ConsumeResult<byte[]?, byte[]?> record, MessageComponentType component, Exception e)
    {
        var part = component == MessageComponentType.Key ? "key" : "value";
        var reason =
            $"Could not deserialize the {part} of the record at topic '{record.Topic}', partition {record.Partition.Value}, offset {record.Offset.Value} " +
            $"as {typeof(T).FullName ?? typeof(T).Name}: {e.GetType().Name}: {e.Message}";
        var code = component == MessageComponentType.Key ? ErrorCode.Local_KeyDeserialization : ErrorCode.Local_ValueDeserialization;
        if (SerdeFailureClassifier.IsRegistryUnavailable(e))
        {
            return new KafkaTransactionException(TransactionErrorKind.Retriable, new Error(code, reason),
                reason + ". The schema registry could not be reached or failed: not the record's fault. The processor backs off and reads it again, without counting an attempt.",
                TransactionState.InTransaction, e);
        }

        return new ConsumeException(record, new Error(code, reason), e);
    }
}
