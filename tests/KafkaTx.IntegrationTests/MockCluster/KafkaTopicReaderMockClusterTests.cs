using Confluent.Kafka;
using KafkaTx.Testing;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// KafkaTx.Testing's reader for real brokers, through the real client on librdkafka's mock cluster: it reads every
/// partition to its end, and never creates the topic it reads (the mock creates topics on request, as a broker with
/// auto.create.topics.enable does). The mock has no read_committed: that half is in RealBrokerTopicReaderTests.
/// </summary>
public sealed class KafkaTopicReaderMockClusterTests : IDisposable
{
    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public void It_reads_every_partition_to_its_end_partition_by_partition()
    {
        _cluster.CreateTopic("orders", partitions: 3);
        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers }).Build())
        {
            producer.Produce(new TopicPartition("orders", 2), new Message<string, string> { Key = "c", Value = "3" });
            producer.Produce(new TopicPartition("orders", 0), new Message<string, string> { Key = "a", Value = "1" });
            producer.Produce(new TopicPartition("orders", 0), new Message<string, string> { Key = "b", Value = "2" });
            producer.Flush(TimeSpan.FromSeconds(10)).Should().Be(0);
        }

        var records = KafkaTopicReader.ReadTopic(_cluster.BootstrapServers, "orders", timeout: TimeSpan.FromSeconds(30));

        records.Select(r => $"{r.TopicPartition.Partition.Value}@{r.Offset}:{r.KeyText}={r.ValueText}").Should().Equal("0@0:a=1", "0@1:b=2", "2@0:c=3");
    }

    [Fact]
    public void A_topic_that_does_not_exist_reads_as_empty_and_is_not_created()
    {
        KafkaTopicReader.ReadTopic(_cluster.BootstrapServers, "no-such-topic", timeout: TimeSpan.FromSeconds(30)).Should().BeEmpty();

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = _cluster.BootstrapServers }).Build();
        admin.GetMetadata(TimeSpan.FromSeconds(10)).Topics.Select(t => t.Topic).Should().NotContain("no-such-topic"); // all topics: this request creates none
    }

    [Fact]
    public void An_unreachable_broker_times_out_with_a_message_naming_it()
    {
        var act = () => KafkaTopicReader.ReadTopic("127.0.0.1:9", "orders", timeout: TimeSpan.FromSeconds(2));

        act.Should().Throw<TimeoutException>().Which.Message.Should().Contain("orders").And.Contain("reachable");
    }
}
