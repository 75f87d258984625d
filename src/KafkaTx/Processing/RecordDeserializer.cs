using Confluent.Kafka;
using KafkaTx.Serialization;

namespace KafkaTx.Processing;

/// <summary>
/// Turns a consumed record into the handler's types with the application's deserializers (user code, run with no
/// synchronization context). A byte[] processor gets the consumed record itself.
/// </summary>
internal sealed class RecordDeserializer<TKey, TValue>(DeserializerRegistry deserializers)
{
    private IDeserializer<TKey>? _key;     // looked up at the first record, not at every one
    private IDeserializer<TValue>? _value;

    public ConsumeResult<TKey, TValue> Deserialize(ConsumeResult<byte[]?, byte[]?> result)
    {
        using (ProcessorThread.WithoutContext())
        {
            var headers = result.Message.Headers;
            var keyContext = new SerializationContext(MessageComponentType.Key, result.Topic, headers);
            var valueContext = new SerializationContext(MessageComponentType.Value, result.Topic, headers);
            _key ??= deserializers.Resolve<TKey>(keyContext);
            _value ??= deserializers.Resolve<TValue>(valueContext);
            if (result is ConsumeResult<TKey, TValue> same
                && ReferenceEquals(_key, Deserializers.ByteArray) && ReferenceEquals(_value, Deserializers.ByteArray))
            {
                return same; // it was built for this record alone
            }

            return new ConsumeResult<TKey, TValue>
            {
                TopicPartitionOffset = result.TopicPartitionOffset,
                Message = new Message<TKey, TValue>
                {
                    Key = DeserializerRegistry.Deserialize(_key, result, keyContext),
                    Value = DeserializerRegistry.Deserialize(_value, result, valueContext),
                    Headers = headers,
                    Timestamp = result.Message.Timestamp,
                },
                LeaderEpoch = result.LeaderEpoch,
            };
        }
    }
}
