using Confluent.Kafka;
using KafkaTx.Serialization;

namespace KafkaTx.Processing;

/// <summary>
/// Turns a consumed record into the handler's types with the application's deserializers (user code, run with no
/// synchronization context). A byte[] processor gets the consumed record itself. Asynchronous deserializers (Schema
/// Registry serdes) are awaited; with synchronous ones <see cref="DeserializeAsync"/> completes at once.
/// </summary>
internal sealed class RecordDeserializer<TKey, TValue>(DeserializerRegistry deserializers)
{
    private object? _key;     // looked up at the first record, not at every one
    private object? _value;

    /// <summary>The record in the handler's types: at once (synchronous deserializers), or after awaiting the asynchronous ones.</summary>
    /// <exception cref="ConsumeException">A deserializer failed (see <see cref="DeserializerRegistry.Deserialize{T}"/>); thrown at once by a synchronous one.</exception>
    public ValueTask<ConsumeResult<TKey, TValue>> DeserializeAsync(ConsumeResult<byte[]?, byte[]?> result)
    {
        var headers = result.Message.Headers;
        var keyContext = new SerializationContext(MessageComponentType.Key, result.Topic, headers);
        var valueContext = new SerializationContext(MessageComponentType.Value, result.Topic, headers);
        _key ??= deserializers.Resolve<TKey>(keyContext);
        _value ??= deserializers.Resolve<TValue>(valueContext);
        if (_key is IDeserializer<TKey> key && _value is IDeserializer<TValue> value)
        {
            return new ValueTask<ConsumeResult<TKey, TValue>>(Deserialize(result, key, value, keyContext, valueContext));
        }

        using (ProcessorThread.WithoutContext())
        {
            return new ValueTask<ConsumeResult<TKey, TValue>>(AwaitAsync(result, keyContext, valueContext));
        }
    }

    /// <summary>Deserializes the record, then calls the handler: a concurrent call's start when a deserializer is asynchronous.</summary>
    public static async ValueTask ThenHandleAsync(ValueTask<ConsumeResult<TKey, TValue>> record, ITransactionalHandler<TKey, TValue> handler, ITransactionScope scope, CancellationToken cancellationToken) =>
        await handler.HandleAsync(await record.ConfigureAwait(false), scope, cancellationToken).ConfigureAwait(false);

    private static ConsumeResult<TKey, TValue> Deserialize(ConsumeResult<byte[]?, byte[]?> result, IDeserializer<TKey> key, IDeserializer<TValue> value, in SerializationContext keyContext, in SerializationContext valueContext)
    {
        using (ProcessorThread.WithoutContext())
        {
            if (result is ConsumeResult<TKey, TValue> same
                && ReferenceEquals(key, Deserializers.ByteArray) && ReferenceEquals(value, Deserializers.ByteArray))
            {
                return same; // it was built for this record alone
            }

            return Typed(result, DeserializerRegistry.Deserialize(key, result, keyContext), DeserializerRegistry.Deserialize(value, result, valueContext));
        }
    }

    private async Task<ConsumeResult<TKey, TValue>> AwaitAsync(ConsumeResult<byte[]?, byte[]?> result, SerializationContext keyContext, SerializationContext valueContext)
    {
        var key = _key is IDeserializer<TKey> syncKey
            ? DeserializerRegistry.Deserialize(syncKey, result, keyContext)
            : await DeserializerRegistry.DeserializeAsync((IAsyncDeserializer<TKey>)_key!, result, keyContext).ConfigureAwait(false);
        var value = _value is IDeserializer<TValue> syncValue
            ? DeserializerRegistry.Deserialize(syncValue, result, valueContext)
            : await DeserializerRegistry.DeserializeAsync((IAsyncDeserializer<TValue>)_value!, result, valueContext).ConfigureAwait(false);
        return Typed(result, key, value);
    }

    private static ConsumeResult<TKey, TValue> Typed(ConsumeResult<byte[]?, byte[]?> result, TKey key, TValue value) => new()
    {
        TopicPartitionOffset = result.TopicPartitionOffset,
        Message = new Message<TKey, TValue>
        {
            Key = key,
            Value = value,
            Headers = result.Message.Headers,
            Timestamp = result.Message.Timestamp,
        },
        LeaderEpoch = result.LeaderEpoch,
    };
}
