using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// Cancellation during a slow commit, through the real client: the transaction coordinator answers after a long
/// round trip, so librdkafka's CommitTransaction times out slice after slice while the caller's token is cancelled.
/// Once sent, the commit runs to its outcome; the unit is not left stuck, and the next call works.
/// </summary>
public sealed class CancellationMockClusterTests : IDisposable
{
    private const string Topic = "cancelled-during-commit";
    private const int Coordinator = 1;
    private const int Leader = 2;
    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task Cancelling_ExecuteAsync_200_ms_into_a_slow_commit_completes_the_commit_and_the_next_call_works()
    {
        var id = KafkaTxHost.UniqueName("cancel-commit");
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, id);
        _cluster.CreateTopic(Topic, partitions: 1);
        _cluster.SetPartitionLeader(Topic, 0, Leader);
        _cluster.SetTransactionCoordinator(id, Coordinator);
        await host.Unit.InitializeAsync();
        using var cancel = new CancellationTokenSource();

        var call = host.Unit.ExecuteAsync(async (scope, ct) =>
        {
            scope.Produce(new TopicPartition(Topic, 0), new Message<string, string> { Key = "k", Value = "first" });

            // Once the record is in the log its partition is part of the transaction; from then on the coordinator
            // answers every request 3 s late, so the commit outlasts several of KafkaTx's one-second slices.
            await Eventually.Until(() => TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(10), Topic).Count == 1, TimeSpan.FromSeconds(30));
            _cluster.SetBrokerRoundTrip(Coordinator, TimeSpan.FromSeconds(3));
        }, cancel.Token);
        await Eventually.Until(() => host.Unit.State == TransactionState.Committing, TimeSpan.FromSeconds(30), "the commit has begun");
        await Task.Delay(TimeSpan.FromMilliseconds(200)); // the scenario: the request is cancelled 200 ms into its commit
        await cancel.CancelAsync();

        await call.WaitAsync(TimeSpan.FromSeconds(60)); // the commit was sent: it completes, and the caller is told so
        host.Unit.State.Should().Be(TransactionState.Ready);
        _cluster.SetBrokerRoundTrip(Coordinator, TimeSpan.Zero);

        await host.Unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce(new TopicPartition(Topic, 0), new Message<string, string> { Key = "k", Value = "second" });
            return ValueTask.CompletedTask;
        });

        host.Unit.State.Should().Be(TransactionState.Ready);
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(30), Topic)
            .Select(r => r.Value).Should().Equal("first", "second");
    }
}
