using Confluent.Kafka;

namespace KafkaTx.Serialization;

/// <summary>
/// One reusable byte-level message per thread for the produce path. Confluent.Kafka copies what it needs during
/// Produce and keeps no reference to the message, so reusing it saves an allocation per record. A client
/// factory's producer must likewise copy what it keeps (see <see cref="IKafkaClientFactory"/>).
/// </summary>
internal static class ScratchMessage
{
    [ThreadStatic]
    private static Message<byte[]?, byte[]?>? t_message;

    public static Message<byte[]?, byte[]?> Rent(byte[]? key, byte[]? value, Headers? headers, Timestamp timestamp)
    {
        var message = t_message ?? new Message<byte[]?, byte[]?>();
        t_message = null; // a nested Produce (from a serializer, say) gets its own instance
        message.Key = key;
        message.Value = value;
        message.Headers = headers;
        message.Timestamp = timestamp;
        return message;
    }

    public static void Return(Message<byte[]?, byte[]?> message)
    {
        // Drop the references so that the scratch message does not keep the caller's data alive.
        message.Key = null;
        message.Value = null;
        message.Headers = null;
        message.Timestamp = default;
        t_message = message;
    }
}
