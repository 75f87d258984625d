using AtomicMultiTopicWrites;
using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// Self-healing through the real client: librdkafka's mock cluster answers EndTxn with INVALID_TXN_STATE, as real
/// brokers do in confluentinc/librdkafka#4849 (an abort right after producing), and Confluent.Kafka raises its fatal
/// error. The unit replaces its producer; the caller sees the failure that matters, never the abort's.
/// </summary>
public sealed class SelfHealingMockClusterTests : IDisposable
{
    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task A_task_whose_abort_fails_fatally_reports_its_own_failure_and_the_next_task_commits_to_all_three_topics()
    {
        var logs = new CapturingLoggerProvider();
        var services = new ServiceCollection();
        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Debug).AddProvider(logs));
        services.AddSingleton(TimeProvider.System);
        services.AddKafkaTransactions(o =>
            {
                o.BootstrapServers = _cluster.BootstrapServers;
                o.TransactionalId = KafkaTxHost.UniqueName("task-api");
            })
            .AddSerializer(new KafkaJsonSerde<TaskCreated>())
            .AddSerializer(new KafkaJsonSerde<AuditEntry>())
            .AddSerializer(new KafkaJsonSerde<Notification>());
        services.AddSingleton<TaskService>();
        await using var provider = services.BuildServiceProvider();
        var tasks = provider.GetRequiredService<TaskService>();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        foreach (var topic in new[] { TaskService.TaskEvents, TaskService.AuditLog, TaskService.NotificationQueue })
        {
            _cluster.CreateTopic(topic, partitions: 1);
        }

        await tasks.CreateTaskAsync(new TaskCreated("task-1", "Plan the sprint", "user-123"));

        // The sample's failing task, with one difference: the work waits until its two records are in the log before
        // it fails, so that their partitions are part of the transaction and the abort really reaches the coordinator
        // (an abort of a transaction with no partition sends no EndTxn, and the injected error would wait for the next).
        _cluster.PushRequestErrors(KafkaApi.EndTxn, ErrorCode.InvalidTxnState);
        var failure = await unit.Awaiting(u => u.ExecuteAsync(async (scope, ct) =>
        {
            scope.Produce(TaskService.TaskEvents, new Message<string, TaskCreated> { Key = "task-2", Value = new TaskCreated("task-2", "Review the budget", "user-789") });
            scope.Produce(TaskService.AuditLog, new Message<string, AuditEntry> { Key = "task-2", Value = new AuditEntry("task_created", "task-2", DateTimeOffset.UtcNow) });
            await Eventually.Until(() => TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(10), TaskService.AuditLog).Count == 2, TimeSpan.FromSeconds(30));
            throw new InvalidOperationException("notification template for task task-2 not found");
        })).Should().ThrowAsync<InvalidOperationException>();

        failure.Which.Message.Should().Contain("notification template for task task-2");
        unit.State.Should().Be(TransactionState.Ready);
        logs.Entries.Should().Contain(e => e.Message.Contains("Replacing the producer", StringComparison.Ordinal) && e.Message.Contains("InvalidTxnState", StringComparison.Ordinal));

        await tasks.CreateTaskAsync(new TaskCreated("task-3", "Write the report", "user-456"));
        foreach (var topic in new[] { TaskService.TaskEvents, TaskService.AuditLog, TaskService.NotificationQueue })
        {
            TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(30), topic)
                .Should().Contain(r => r.Value != null && r.Value.Contains("task-3", StringComparison.Ordinal), $"the next task reaches {topic}");
        }
    }

    [Fact]
    public async Task An_explicit_abort_answered_with_INVALID_TXN_STATE_completes_and_the_next_transaction_commits()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("explicit-abort"));
        _cluster.CreateTopic("healed");
        await host.Unit.InitializeAsync();
        host.Unit.BeginTransaction();
        host.Unit.Produce(new TopicPartition("healed", 0), new Message<string, string> { Key = "k", Value = "aborted" });

        // Once the record is in the log its partition is part of the transaction, so the abort goes to the coordinator.
        await Eventually.Until(() => TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(10), "healed").Count == 1, TimeSpan.FromSeconds(30));
        _cluster.PushRequestErrors(KafkaApi.EndTxn, ErrorCode.InvalidTxnState);

        await host.Unit.AbortAsync();

        host.Unit.State.Should().Be(TransactionState.Ready);
        host.Logs.Entries.Should().Contain(e => e.Message.Contains("Replacing the producer", StringComparison.Ordinal), "the abort failed fatally and was healed");
        host.Unit.BeginTransaction();
        host.Unit.Produce(new TopicPartition("healed", 0), new Message<string, string> { Key = "k", Value = "committed" });
        await host.Unit.CommitAsync();
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(30), "healed")
            .Select(r => r.Value).Should().Contain("committed");
    }

    [Fact]
    public async Task A_commit_answered_with_INVALID_TXN_STATE_is_OutcomeUnknown_not_run_again_and_the_unit_goes_on()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("commit-heal"), o => o.Retry.MaxAttempts = 5);
        await host.Unit.InitializeAsync();
        var runs = 0;

        var failure = await host.Unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            runs++;
            _cluster.PushRequestErrors(KafkaApi.EndTxn, ErrorCode.InvalidTxnState);
            scope.Produce(new TopicPartition("commit-heal", 0), new Message<string, string> { Key = "k", Value = "unknown" });
            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown);
        runs.Should().Be(1, "an unknown outcome is never re-run automatically");
        host.Unit.State.Should().Be(TransactionState.Ready);
        await host.Unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce(new TopicPartition("commit-heal", 0), new Message<string, string> { Key = "k", Value = "next" });
            return ValueTask.CompletedTask;
        });
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(30), "commit-heal")
            .Select(r => r.Value).Should().Contain("next");
    }
}
