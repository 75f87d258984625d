using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// Rows of the fault matrix (docs/reliability.md) that are not a single injected error code: slow brokers, leaders
/// and coordinators going away. Through the real client, on librdkafka's mock cluster.
/// </summary>
public sealed class FaultMatrixMockClusterTests : IDisposable
{
    private static readonly TimeSpan ReadDeadline = TimeSpan.FromSeconds(30);
    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task A_broker_slower_than_CommitTimeout_leaves_the_commit_OutcomeUnknown_and_resuming_it_commits_once()
    {
        var id = KafkaTxHost.UniqueName("slow-broker");
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, id, o => o.CommitTimeout = TimeSpan.FromSeconds(1));
        await host.Unit.InitializeAsync();
        host.Unit.BeginTransaction();
        host.Unit.Produce(new TopicPartition("slow", 0), new Message<Null, string> { Value = "v" });
        for (var broker = 1; broker <= MockKafkaCluster.BrokerCount; broker++)
        {
            _cluster.SetBrokerRoundTrip(broker, TimeSpan.FromSeconds(3));
        }

        var failure = await host.Unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();
        failure.Which.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown, "the commit was sent; whether it took effect is unknown");
        host.Unit.State.Should().Be(TransactionState.Committing);

        for (var broker = 1; broker <= MockKafkaCluster.BrokerCount; broker++)
        {
            _cluster.SetBrokerRoundTrip(broker, TimeSpan.Zero);
        }

        await host.Unit.CommitAsync(); // resumes the same commit
        host.Unit.State.Should().Be(TransactionState.Ready);
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "slow").Should().ContainSingle("the commit took effect once");
    }

    [Fact]
    public async Task A_partition_leader_lost_during_produce_is_followed_to_its_new_leader_and_the_transaction_commits()
    {
        var id = KafkaTxHost.UniqueName("leader-down");
        _cluster.CreateTopic("leader-moves", 1);
        _cluster.SetPartitionLeader("leader-moves", 0, 2);
        _cluster.SetTransactionCoordinator(id, 1);
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, id, o => o.Retry.MaxAttempts = 1);
        await host.Unit.InitializeAsync();

        await host.Unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce(new TopicPartition("leader-moves", 0), new Message<Null, string> { Value = "before" });
            _cluster.SetBrokerDown(2);                         // the leader dies with the record in flight
            _cluster.SetPartitionLeader("leader-moves", 0, 3); // and another broker is elected
            scope.Produce(new TopicPartition("leader-moves", 0), new Message<Null, string> { Value = "after" });
            return ValueTask.CompletedTask;
        });

        host.Unit.State.Should().Be(TransactionState.Ready);
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "leader-moves").Select(r => r.Value).Should().Equal("before", "after");
    }

    [Fact]
    public async Task A_SendOffsetsToTransaction_stuck_on_a_lost_group_coordinator_is_abandoned_and_the_next_attempt_commits()
    {
        // With its group coordinator down, librdkafka's SendOffsetsToTransaction did not return, whatever its
        // timeout. The unit gives such a producer up once the call overruns its timeout, replaces it (the new
        // producer's InitTransactions aborts the transaction), and runs the work again.
        var id = KafkaTxHost.UniqueName("group-coordinator-down");
        const string Group = "offsets-group";
        _cluster.CreateTopic("offsets-input", 1);
        _cluster.SetTransactionCoordinator(id, 1);
        _cluster.SetGroupCoordinator(Group, 2);
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, id, o =>
        {
            o.SendOffsetsTimeout = TimeSpan.FromSeconds(2);
            o.Retry.MaxAttempts = 2;
        });
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = Group }).Build();
        await host.Unit.InitializeAsync();
        _cluster.SetBrokerDown(2);
        var runs = 0;

        await host.Unit.ExecuteAsync(async (scope, ct) =>
        {
            if (++runs == 2)
            {
                _cluster.SetBrokerUp(2); // the coordinator is back for the second attempt
            }

            scope.Produce(new TopicPartition("offsets-output", 0), new Message<Null, string> { Value = "run " + runs });
            await scope.SendOffsetsAsync([new TopicPartitionOffset("offsets-input", 0, 5)], consumer.ConsumerGroupMetadata, ct);
        }).WaitAsync(TimeSpan.FromSeconds(90));

        runs.Should().Be(2);
        host.Unit.State.Should().Be(TransactionState.Ready);
        host.Logs.Entries.Should().Contain(e => e.Message.Contains("has not returned", StringComparison.Ordinal) && e.Message.Contains("SendOffsetsToTransaction", StringComparison.Ordinal));
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "offsets-output").Select(r => r.Value).Should().Contain("run 2");
    }
}
