using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// INVALID_PRODUCER_ID_MAPPING: the broker forgot the producer id of a transactional.id that idled past
/// transactional.id.expiration.ms (7 days by default). The mock cluster answers with it as such a broker does, and
/// librdkafka 2.16 raises it as an abortable error needing an epoch bump. KafkaTx replaces the producer (a new
/// InitTransactions maps the transactional.id afresh) and runs the work again: the caller sees a success.
/// </summary>
public sealed class ExpiredProducerIdMockClusterTests : IDisposable
{
    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    [Theory]
    [InlineData(KafkaApi.AddPartitionsToTxn)]
    [InlineData(KafkaApi.EndTxn)]
    public async Task The_producer_is_replaced_and_the_work_commits_once(KafkaApi api)
    {
        var topic = KafkaTxHost.UniqueName("expired-pid");
        _cluster.CreateTopic(topic, partitions: 1);
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("expired-pid"));
        await host.Unit.InitializeAsync();
        await host.Unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce(topic, new Message<string, string> { Key = "k", Value = "before" });
            return ValueTask.CompletedTask;
        });

        // The id expires while the producer idles: the next transaction's first request to the coordinator is refused.
        _cluster.PushRequestErrors(api, ErrorCode.InvalidProducerIdMapping);
        var attempts = 0;
        await host.Unit.ExecuteAsync((scope, _) =>
        {
            attempts++;
            scope.Produce(topic, new Message<string, string> { Key = "k", Value = "after" });
            return ValueTask.CompletedTask;
        });

        attempts.Should().Be(2, "the first attempt's transaction could not commit, and the work ran again");
        host.Unit.State.Should().Be(TransactionState.Ready);
        host.Logs.Entries.Should().Contain(e => e.Message.Contains("Replacing the producer", StringComparison.Ordinal) && e.Message.Contains("InvalidProducerIdMapping", StringComparison.Ordinal));
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(30), topic)
            .Select(r => r.Value).Should().Contain("after");
    }
}
