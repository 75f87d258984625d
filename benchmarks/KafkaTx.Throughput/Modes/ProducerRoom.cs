using Confluent.Kafka;

namespace KafkaTx.Throughput.Modes;

/// <summary>
/// Produces a record, waiting for room while librdkafka's local queue is full (polling its delivery reports meanwhile),
/// as KafkaTx itself does rather than failing: every writer in the harness, seeding or measured, writes this way.
/// </summary>
internal static class ProducerRoom
{
    /// <summary>Produces <paramref name="message"/> to <paramref name="partition"/> (Partition.Any: the partitioner's choice).</summary>
    public static void ProduceWaitingForRoom(this IProducer<byte[]?, byte[]?> producer, TopicPartition partition, Message<byte[]?, byte[]?> message, TimeSpan pollWhileFull)
    {
        while (true)
        {
            try
            {
                producer.Produce(partition, message);
                return;
            }
            catch (ProduceException<byte[]?, byte[]?> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                producer.Poll(pollWhileFull);
            }
        }
    }
}
