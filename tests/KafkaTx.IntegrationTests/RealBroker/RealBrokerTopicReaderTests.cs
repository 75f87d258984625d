using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;
using KafkaTx.Testing;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// KafkaTx.Testing's reader on a real broker: read_committed sees committed transactions only, and returns at the
/// last stable offset instead of waiting for a transaction still open. Skipped, with the reason, without a broker.
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBrokerTopicReaderTests(KafkaBrokerFixture broker)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [SkippableFact]
    public async Task RealBroker_the_reader_sees_committed_transactions_only_and_does_not_wait_for_an_open_one()
    {
        var servers = broker.RequireBroker();
        var topic = (await broker.CreateTopicsAsync(2, "reader"))[0];
        await using var host = new KafkaTxHost(servers, KafkaTxHost.UniqueName("reader"));
        await host.Unit.ExecuteAsync(tx => tx.Produce(topic, new Message<string, string> { Key = "k1", Value = "committed" }));
        var aborted = () => host.Unit.ExecuteAsync(tx =>
        {
            tx.Produce(topic, new Message<string, string> { Key = "k2", Value = "aborted" });
            throw new InvalidOperationException("abort it");
        });
        await aborted.Should().ThrowAsync<InvalidOperationException>();
        host.Unit.BeginTransaction();
        host.Unit.Produce(topic, new Message<string, string> { Key = "k3", Value = "open" });
        await Eventually.Until(() => KafkaTopicReader.ReadTopic(servers, topic, IsolationLevel.ReadUncommitted, Deadline).Any(r => r.ValueText == "open"), Deadline);

        var committed = KafkaTopicReader.ReadTopic(servers, topic, timeout: Deadline);

        committed.Select(r => r.ValueText).Should().Equal("committed");
        await host.Unit.AbortAsync();
    }

    [SkippableFact]
    public void RealBroker_reading_a_topic_that_does_not_exist_does_not_create_it()
    {
        var servers = broker.RequireBroker();
        var topic = KafkaTxHost.UniqueName("missing");

        KafkaTopicReader.ReadTopic(servers, topic, timeout: Deadline).Should().BeEmpty();

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = servers }).Build();
        admin.GetMetadata(TimeSpan.FromSeconds(10)).Topics.Select(t => t.Topic).Should().NotContain(topic);
    }
}
