using Confluent.Kafka;
using KafkaTx.Testing;

namespace KafkaTx.Tests.InMemory;

/// <summary>Reading a topic is an observation: it never creates the topic, so the application can still create it as it wants.</summary>
public class ReadTopicTests
{
    [Fact]
    public void Reading_a_topic_that_does_not_exist_returns_nothing_and_leaves_it_to_be_created_with_its_own_partition_count()
    {
        var kafka = new InMemoryKafkaCluster(defaultPartitions: 1);

        kafka.ReadTopic("shipments").Should().BeEmpty();
        kafka.ReadTopic("shipments", IsolationLevel.ReadUncommitted).Should().BeEmpty();
        kafka.ReadPartition(new TopicPartition("shipments", 2)).Should().BeEmpty();

        // Before the fix, reading had created the topic with one partition, and this threw "already exists with 1 partitions".
        kafka.CreateTopic("shipments", 3);
        kafka.PartitionCount("shipments").Should().Be(3);
    }

    [Fact]
    public void An_existing_topic_reads_partition_by_partition_and_a_partition_it_lacks_is_refused()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("orders", 2);
        using var producer = kafka.CreateProducer(new ProducerConfig());
        producer.Produce(new TopicPartition("orders", 1), new Message<byte[]?, byte[]?> { Value = "b"u8.ToArray() });
        producer.Produce(new TopicPartition("orders", 0), new Message<byte[]?, byte[]?> { Value = "a"u8.ToArray() });

        kafka.ReadTopic("orders").Select(r => r.ValueText).Should().Equal("a", "b");
        var act = () => kafka.ReadPartition(new TopicPartition("orders", 5));
        act.Should().Throw<KafkaException>().Which.Error.Code.Should().Be(ErrorCode.Local_UnknownPartition);
    }
}
