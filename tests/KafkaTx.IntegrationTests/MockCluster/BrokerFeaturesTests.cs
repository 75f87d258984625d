using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>The real-broker tests decide what to assert from BrokerFeatures: its detection is checked on a known answer.</summary>
public sealed class BrokerFeaturesTests
{
    [Fact]
    public async Task The_mock_cluster_is_read_as_supporting_KIP_360_but_not_KIP_447()
    {
        // librdkafka 2.16's mock answers InitProducerId up to v4 and OffsetFetch below v7.
        using var cluster = new MockKafkaCluster();

        var features = await BrokerFeatures.DetectAsync(cluster.BootstrapServers);

        features.MaxVersion(22).Should().BeGreaterThanOrEqualTo(3, "InitProducerId");
        features.EpochBump.Should().BeTrue();
        features.MaxVersion(9).Should().BeInRange(0, 6, "OffsetFetch");
        features.StableOffsetFetch.Should().BeFalse();
        features.ToString().Should().Contain("KIP-360 yes").And.Contain("KIP-447 no");
    }

    [Fact]
    public async Task The_mock_cluster_is_read_as_speaking_the_consumer_group_protocol()
    {
        // librdkafka's mock answers ConsumerGroupHeartbeat (API 68) since 2.12; its processors on GroupProtocol.Consumer join.
        using var cluster = new MockKafkaCluster();

        var features = await BrokerFeatures.DetectAsync(cluster.BootstrapServers);

        features.MaxVersion(68).Should().BeGreaterThanOrEqualTo(0, "ConsumerGroupHeartbeat");
        features.ConsumerGroupProtocol.Should().BeTrue();
        features.Lacks(GroupProtocol.Consumer).Should().BeNull();
        features.Lacks(GroupProtocol.Classic).Should().BeNull();
        features.ToString().Should().Contain("KIP-848 yes");
    }
}
