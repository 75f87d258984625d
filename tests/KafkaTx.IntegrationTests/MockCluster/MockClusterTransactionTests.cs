using System.Globalization;
using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>Transactions through the real Confluent.Kafka client and librdkafka, against the in-process mock cluster.</summary>
public sealed class MockClusterTransactionTests : IDisposable
{
    private static readonly TimeSpan ReadDeadline = TimeSpan.FromSeconds(30);
    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task A_committed_transaction_writes_all_three_topics()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("task-api"));

        await host.Unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("task-events", new Message<string, string> { Key = "task-123", Value = """{"event":"created"}""" });
            scope.Produce("audit-log", new Message<string, string> { Key = "task-123", Value = """{"action":"task_created"}""" });
            scope.Produce("notification-queue", new Message<string, string> { Key = "user-456", Value = """{"notify":"task_assigned"}""" });
            return ValueTask.CompletedTask;
        });

        var records = TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "task-events", "audit-log", "notification-queue");
        records.Select(r => (r.Topic, r.Key)).Should().BeEquivalentTo(new[] { ("task-events", "task-123"), ("audit-log", "task-123"), ("notification-queue", "user-456") });
        host.Unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task Records_written_in_a_traced_request_carry_its_W3C_trace_context_through_librdkafka_and_keep_their_own_headers()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("traced"));
        using var request = new System.Diagnostics.Activity("POST /tasks") { TraceStateString = "vendor=7" }.Start();

        await host.Unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("traced-events", new Message<string, string>
            {
                Key = "task-1",
                Value = "created",
                Headers = new Headers { { "tenant", "acme"u8.ToArray() } },
            });
            return ValueTask.CompletedTask;
        });
        request.Stop();

        var record = TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "traced-events").Should().ContainSingle().Subject;
        var headers = record.Headers!.ToDictionary(h => h.Key, h => System.Text.Encoding.ASCII.GetString(h.GetValueBytes()));
        headers["tenant"].Should().Be("acme");
        headers["traceparent"].Should().Be(request.Id, "with no KafkaTx listener the record carries the caller's own span");
        headers["tracestate"].Should().Be("vendor=7");
    }

    [Fact]
    public async Task A_pool_keeps_transactions_of_its_slots_in_flight_at_once_through_the_real_client()
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = _cluster.BootstrapServers;
            o.TransactionalIdPrefix = KafkaTxHost.UniqueName("pool");
            o.InstanceId = "pod-0";
        }).AddUnitOfWorkPool(3);
        await using var app = services.BuildServiceProvider();
        var pool = app.GetRequiredService<ITransactionalUnitOfWorkPool>();
        var inFlight = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var overlapped = 0;

        await Task.WhenAll(Enumerable.Range(0, 12).Select(request => pool.ExecuteAsync(async (tx, ct) =>
        {
            inFlight[tx.TransactionalId] = request;
            if (inFlight.Count > 1)
            {
                Interlocked.Exchange(ref overlapped, 1);
            }

            tx.Produce("pool-orders", new Message<string, string> { Key = "order-" + request.ToString(CultureInfo.InvariantCulture), Value = "placed" });
            await Task.Delay(20, ct);
            inFlight.TryRemove(tx.TransactionalId, out _);
        })));

        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "pool-orders").Select(r => r.Key).Should().HaveCount(12).And.OnlyHaveUniqueItems();
        overlapped.Should().Be(1, "two slots' transactions were open at the same time");
        pool.TransactionalIds.Select(id => id[^7..]).Should().Equal("-slot-0", "-slot-1", "-slot-2");
    }

    [Fact]
    public async Task Commit_and_abort_each_write_a_marker_that_occupies_an_offset()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("markers"));
        var partition = new TopicPartition("marker-topic", 0);
        await host.Unit.InitializeAsync();

        host.Unit.BeginTransaction();
        host.Unit.Produce(partition, new Message<Null, string> { Value = "committed" });
        await host.Unit.CommitAsync();
        var afterCommit = TopicReader.EndOffset(_cluster.BootstrapServers, partition);

        host.Unit.BeginTransaction();
        host.Unit.Produce(partition, new Message<Null, string> { Value = "aborted" });
        await Eventually.Until(() => TopicReader.EndOffset(_cluster.BootstrapServers, partition) == 3, TimeSpan.FromSeconds(10)); // an abort purges records not yet sent
        await host.Unit.AbortAsync();
        var afterAbort = TopicReader.EndOffset(_cluster.BootstrapServers, partition);

        afterCommit.Should().Be(2, "one record and the commit marker");
        afterAbort.Should().Be(4, "one more record and the abort marker");
        host.Unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task One_hundred_orders_commit_in_one_transaction_across_three_topics()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("order-batch"));

        await host.Unit.ExecuteAsync((scope, _) =>
        {
            for (var i = 0; i < 100; i++)
            {
                var id = "order-" + i.ToString("D3", CultureInfo.InvariantCulture);
                scope.Produce("processed-orders", new Message<string, string> { Key = id, Value = "processed" });
                scope.Produce("audit-log", new Message<string, string> { Key = id, Value = "order_processed" });
                scope.Produce("ledger-updates", new Message<string, string> { Key = id, Value = "debit" });
            }

            return ValueTask.CompletedTask;
        });

        var records = TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "processed-orders", "audit-log", "ledger-updates");
        records.Should().HaveCount(300);
        records.GroupBy(r => r.Topic).Should().AllSatisfy(g => g.Select(r => r.Key).Distinct().Should().HaveCount(100));
    }

    [Fact]
    public async Task Many_back_to_back_small_transactions_commit_in_order()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("back-to-back"));
        var partition = new TopicPartition("sequence", 0);

        for (var i = 0; i < 20; i++)
        {
            var value = i.ToString(CultureInfo.InvariantCulture);
            await host.Unit.ExecuteAsync((scope, _) =>
            {
                scope.Produce(partition, new Message<Null, string> { Value = value });
                return ValueTask.CompletedTask;
            });
        }

        var records = TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "sequence");
        records.Select(r => r.Value).Should().Equal(Enumerable.Range(0, 20).Select(i => i.ToString(CultureInfo.InvariantCulture)));
    }

    [Fact]
    public async Task The_transaction_coordinator_moving_during_commit_does_not_fail_the_commit()
    {
        var id = KafkaTxHost.UniqueName("moving");
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, id);
        await host.Unit.InitializeAsync();
        host.Unit.BeginTransaction();
        host.Unit.Produce("moved", new Message<Null, string> { Value = "v" });

        _cluster.SetTransactionCoordinator(id, 2);
        _cluster.PushRequestErrors(KafkaApi.EndTxn, ErrorCode.NotCoordinatorForGroup);
        await host.Unit.CommitAsync();

        host.Unit.State.Should().Be(TransactionState.Ready);
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "moved").Should().ContainSingle();
    }

    [Fact]
    public async Task The_coordinator_down_during_commit_delays_it_and_the_commit_resumes_when_it_returns()
    {
        var id = KafkaTxHost.UniqueName("coordinator-down");
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, id, o => o.CommitTimeout = TimeSpan.FromSeconds(20));
        _cluster.SetTransactionCoordinator(id, 1);
        await host.Unit.InitializeAsync();
        host.Unit.BeginTransaction();
        host.Unit.Produce(new TopicPartition("outage", 0), new Message<Null, string> { Value = "v" });

        _cluster.SetAllBrokersDown();

        var commit = host.Unit.CommitAsync();
        await host.Logs.WaitFor(m => m.Contains("CommitTransaction", StringComparison.Ordinal) && m.Contains("retrying the call", StringComparison.Ordinal)).WaitAsync(TimeSpan.FromSeconds(15));
        commit.IsCompleted.Should().BeFalse("the brokers are down");
        host.Unit.State.Should().Be(TransactionState.Committing);
        _cluster.SetAllBrokersUp();

        await commit.WaitAsync(TimeSpan.FromSeconds(20));
        host.Unit.State.Should().Be(TransactionState.Ready);
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "outage").Should().ContainSingle();
    }

    [Fact]
    public async Task A_commit_that_outlives_CommitTimeout_has_an_unknown_outcome_until_resumed()
    {
        var id = KafkaTxHost.UniqueName("unknown-outcome");
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, id, o => o.CommitTimeout = TimeSpan.FromSeconds(2));
        await host.Unit.InitializeAsync();
        host.Unit.BeginTransaction();
        host.Unit.Produce(new TopicPartition("pending", 0), new Message<Null, string> { Value = "v" });
        _cluster.SetAllBrokersDown();

        var failure = await host.Unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown);
        failure.Which.Error.Code.Should().Be(ErrorCode.Local_TimedOut);
        host.Unit.State.Should().Be(TransactionState.Committing);
        host.Unit.Invoking(u => u.BeginTransaction()).Should().Throw<InvalidOperationException>();

        _cluster.SetAllBrokersUp();

        // Resumes the same commit and learns its outcome. The client reconnects with a backoff that grew while the
        // brokers were down, which may outlast one CommitTimeout: calling again is what OutcomeUnknown asks for.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                await host.Unit.CommitAsync();
                break;
            }
            catch (KafkaTransactionException e) when (e.Kind == TransactionErrorKind.OutcomeUnknown && DateTime.UtcNow < deadline)
            {
                host.Unit.State.Should().Be(TransactionState.Committing, "an unknown outcome keeps the commit pending");
            }
        }

        host.Unit.State.Should().Be(TransactionState.Ready);
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, ReadDeadline, "pending").Should().ContainSingle();
    }

    [Fact]
    public async Task Initialization_that_cannot_reach_a_coordinator_is_retriable_and_resumes()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("init-down"), o => o.InitTimeout = TimeSpan.FromSeconds(2));
        _cluster.SetAllBrokersDown();

        var failure = await host.Unit.Awaiting(u => u.InitializeAsync()).Should().ThrowAsync<KafkaTransactionException>();
        failure.Which.Kind.Should().Be(TransactionErrorKind.Retriable);
        host.Unit.State.Should().Be(TransactionState.Uninitialized);

        _cluster.SetAllBrokersUp();

        await host.Unit.InitializeAsync();
        host.Unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task Offsets_go_into_the_transaction_through_the_real_client()
    {
        // The mock validates TxnOffsetCommit but does not store the offsets; the real-broker suite proves that the
        // group's offsets move exactly when the transaction commits.
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("offsets"));
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = "order-processors", EnableAutoCommit = false }).Build();
        _cluster.CreateTopic("incoming-orders");

        await host.Unit.ExecuteAsync(async (scope, ct) =>
        {
            scope.Produce("processed-orders", new Message<string, string> { Key = "order-1", Value = "processed" });
            await scope.SendOffsetsAsync([new TopicPartitionOffset("incoming-orders", 0, 42)], consumer.ConsumerGroupMetadata, ct);
        });

        host.Unit.State.Should().Be(TransactionState.Ready);
        host.Logs.Entries.Should().NotContain(e => e.Message.Contains("SendOffsetsToTransaction", StringComparison.Ordinal), "the offsets were accepted at the first try");
    }
}
