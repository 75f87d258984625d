using Confluent.Kafka;

namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// Pauses the consumer's assignment while the buffer is full, and resumes it. A partition leaving the assignment while
/// paused is resumed on its way out: librdkafka may keep a partition's pause across a rebalance, and a partition
/// assigned back still paused would never be read again (the resume covers only what is assigned at the time).
/// </summary>
/// <remarks>Used on the processor's thread (rebalance callbacks run there, inside Consume).</remarks>
internal sealed class AssignmentPause(ProcessorTelemetry telemetry)
{
    private IConsumer<byte[]?, byte[]?>? _consumer; // the one paused; rebalance callbacks run inside its Consume

    /// <summary>Whether the assignment was paused and not resumed since.</summary>
    public bool IsPaused { get; private set; }

    /// <summary>Pauses every assigned partition (every step while full: a partition assigned meanwhile starts unpaused).</summary>
    public void Pause(IConsumer<byte[]?, byte[]?> consumer)
    {
        _consumer = consumer;
        try
        {
            consumer.Pause(consumer.Assignment);
            IsPaused = true;
        }
        catch (KafkaException e)
        {
            telemetry.ConsumerError(e.Error); // a partition moving right now: the next step pauses again
        }
    }

    /// <summary>Resumes every assigned partition.</summary>
    public void Resume(IConsumer<byte[]?, byte[]?> consumer)
    {
        try
        {
            consumer.Resume(consumer.Assignment);
            IsPaused = false;
        }
        catch (KafkaException e)
        {
            telemetry.ConsumerError(e.Error); // the next step resumes again
        }
    }

    /// <summary>Partitions are revoked or lost (still assigned while the callback runs): they leave unpaused.</summary>
    public void Leaving(IEnumerable<TopicPartition> partitions)
    {
        if (!IsPaused || _consumer is null)
        {
            return;
        }

        try
        {
            _consumer.Resume(partitions);
        }
        catch (KafkaException e)
        {
            telemetry.ConsumerError(e.Error);
        }
    }
}
