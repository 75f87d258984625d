using Confluent.Kafka;

namespace KafkaTx;

/// <summary>A record of the current transaction that Kafka did not accept, as reported by its delivery report.</summary>
public sealed class DeliveryFailure
{
    /// <summary>Creates a delivery failure.</summary>
    /// <param name="topicPartition">The topic and partition the record was written to.</param>
    /// <param name="error">The error from the delivery report.</param>
    public DeliveryFailure(TopicPartition topicPartition, Error error)
    {
        TopicPartition = topicPartition ?? throw new ArgumentNullException(nameof(topicPartition));
        Error = error ?? throw new ArgumentNullException(nameof(error));
    }

    /// <summary>The topic and partition the record was written to.</summary>
    public TopicPartition TopicPartition { get; }

    /// <summary>The error from the delivery report.</summary>
    public Error Error { get; }

    /// <inheritdoc />
    public override string ToString() => $"{TopicPartition}: {Error.Code} ({Error.Reason})";
}
