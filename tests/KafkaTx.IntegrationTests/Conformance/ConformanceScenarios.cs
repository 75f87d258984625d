using System.Text;
using Confluent.Kafka;
using KafkaTx.IntegrationTests.Processing;
using KafkaTx.IntegrationTests.RealBroker;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.Conformance;

/// <summary>
/// Kafka's transactional semantics, each scenario written once and run against every backend (the derived classes
/// below, whose names appear in every test name). A backend that cannot emulate what a scenario needs skips it with
/// the reason. Where the in-memory cluster and a real broker disagree, the broker is right and the cluster is wrong.
/// </summary>
public abstract class ConformanceScenarios(IConformanceBackend backend)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    protected IConformanceBackend Backend { get; } = backend;

    /// <summary>The group scenarios run with both group protocols: the classic one and KIP-848's consumer protocol.</summary>
    public static TheoryData<GroupProtocol> Protocols => new() { GroupProtocol.Classic, GroupProtocol.Consumer };

    [SkippableFact]
    public async Task Committed_transaction_is_visible()
    {
        Require();
        var topic = (await Backend.CreateTopicsAsync(1, "committed"))[0];
        using var producer = Transactional("commit");

        producer.BeginTransaction();
        for (var i = 0; i < 3; i++)
        {
            producer.Produce(topic, Record("k" + i, "v" + i));
        }

        producer.CommitTransaction(TimeSpan.FromSeconds(30));

        Read(IsolationLevel.ReadCommitted, topic).Select(r => r.Value).Should().Equal("v0", "v1", "v2");
    }

    [SkippableFact]
    public async Task Aborted_transaction_is_invisible_to_read_committed_and_visible_to_read_uncommitted()
    {
        Require(Capability.ReadCommitted);
        var topic = (await Backend.CreateTopicsAsync(1, "aborted"))[0];
        using var producer = Transactional("abort");

        producer.BeginTransaction();
        producer.Produce(topic, Record("k0", "doomed-0"));
        producer.Produce(topic, Record("k1", "doomed-1"));
        await Eventually.Until(() => Read(IsolationLevel.ReadUncommitted, topic).Count == 2, Deadline, "the records reach the log");
        producer.AbortTransaction(TimeSpan.FromSeconds(30));

        Read(IsolationLevel.ReadCommitted, topic).Should().BeEmpty();
        Read(IsolationLevel.ReadUncommitted, topic).Select(r => r.Value).Should().Equal("doomed-0", "doomed-1");
    }

    [SkippableFact]
    public async Task Open_transaction_is_invisible_until_it_commits()
    {
        Require(Capability.ReadCommitted);
        var topic = (await Backend.CreateTopicsAsync(1, "open"))[0];
        using var producer = Transactional("open");

        producer.BeginTransaction();
        producer.Produce(topic, Record("k", "pending"));
        await Eventually.Until(() => Read(IsolationLevel.ReadUncommitted, topic).Count == 1, Deadline, "the record reaches the log");
        Read(IsolationLevel.ReadCommitted, topic).Should().BeEmpty();

        producer.CommitTransaction(TimeSpan.FromSeconds(30));
        Read(IsolationLevel.ReadCommitted, topic).Select(r => r.Value).Should().Equal("pending");
    }

    [SkippableFact]
    public async Task Zombie_is_fenced_by_a_new_instance_with_the_same_transactional_id()
    {
        Require(Capability.Fencing);
        var topic = (await Backend.CreateTopicsAsync(1, "fencing"))[0];
        var id = "task-processor-" + Guid.NewGuid().ToString("N");
        using var zombie = Transactional(id, unique: false);
        zombie.BeginTransaction();
        zombie.Produce(topic, Record("task-1", "from-zombie"));
        await Eventually.Until(() => Read(IsolationLevel.ReadUncommitted, topic).Count == 1, Deadline, "the zombie's record reaches the log");

        using var successor = Transactional(id, unique: false);
        var commit = () => zombie.CommitTransaction(TimeSpan.FromSeconds(30));

        var fenced = commit.Should().Throw<KafkaException>().Which;
        fenced.Should().NotBeOfType<KafkaRetriableException>().And.NotBeOfType<KafkaTxnRequiresAbortException>();
        fenced.Error.Code.Should().Be(ErrorCode.Local_Fenced);
        fenced.Error.IsFatal.Should().BeTrue();
        TransactionErrorClassifier.Classify(fenced).Should().Be(TransactionErrorKind.Fenced);

        successor.BeginTransaction();
        successor.Produce(topic, Record("task-1", "from-successor"));
        successor.CommitTransaction(TimeSpan.FromSeconds(30));
        Read(IsolationLevel.ReadCommitted, topic).Select(r => r.Value).Should().Equal("from-successor");
    }

    [SkippableFact]
    public async Task Offsets_are_committed_only_with_the_transaction()
    {
        // Three transactions send offsets for one group: the first commits, the second aborts, the third commits.
        // Offsets committed in a transaction show in the group a little after the commit on brokers before 2.5 (no
        // KIP-447 stable offset fetch), so each commit's offsets are polled for, with a deadline. All offsets of a
        // group live in one __consumer_offsets partition, where the aborted transaction's marker comes before the third
        // transaction's offsets: once those show, the abort is settled, and what the group holds is final.
        Require(Capability.TransactionalOffsets);
        var input = (await Backend.CreateTopicsAsync(2, "offsets-in"))[0];
        var first = new TopicPartition(input, 0);
        var second = new TopicPartition(input, 1);
        TopicPartition[] both = [first, second];
        var group = "group-" + Guid.NewGuid().ToString("N");
        using var consumer = Backend.CreateConsumer(new ConsumerConfig { GroupId = group, EnableAutoCommit = false });
        consumer.Assign(both);
        using var producer = Transactional("offsets");

        producer.BeginTransaction();
        producer.SendOffsetsToTransaction([new TopicPartitionOffset(first, 2)], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(30));
        producer.CommitTransaction(TimeSpan.FromSeconds(30));
        var afterFirst = await GroupOffsets.OnceShownAsync(consumer, both, first, Deadline, "the first transaction's offsets show");
        afterFirst[first].Value.Should().Be(2, "exactly the offset the committed transaction sent");
        afterFirst[second].Should().Be(Offset.Unset, "the transaction sent no offset for this partition");

        producer.BeginTransaction();
        producer.SendOffsetsToTransaction([new TopicPartitionOffset(first, 7), new TopicPartitionOffset(second, 3)], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(30));
        producer.AbortTransaction(TimeSpan.FromSeconds(30));

        producer.BeginTransaction();
        producer.SendOffsetsToTransaction([new TopicPartitionOffset(second, 5)], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(30));
        // A read_uncommitted member's fetch answers at once on every broker (no KIP-447 wait for the open transaction).
        using (var peek = Backend.CreateConsumer(new ConsumerConfig { GroupId = group, EnableAutoCommit = false, IsolationLevel = IsolationLevel.ReadUncommitted }))
        {
            var whileOpen = GroupOffsets.Read(peek, both);
            whileOpen[first].Value.Should().Be(2, "neither the aborted nor the open transaction moved it: " + GroupOffsets.Describe(whileOpen));
            whileOpen[second].Should().Be(Offset.Unset, "offsets are not committed before the transaction commits: " + GroupOffsets.Describe(whileOpen));
        }

        producer.CommitTransaction(TimeSpan.FromSeconds(30));
        var afterThird = await GroupOffsets.OnceShownAsync(consumer, both, second, Deadline, "the third transaction's offsets show");
        afterThird[second].Value.Should().Be(5, "exactly the offset the committed transaction sent, never the aborted one's 3");
        afterThird[first].Value.Should().Be(2, "the aborted transaction's 7 never replaced the offset committed before it");
    }

    [SkippableFact]
    public async Task Transaction_markers_occupy_offsets()
    {
        Require(Capability.Markers);
        var topic = (await Backend.CreateTopicsAsync(1, "markers"))[0];
        var partition = new TopicPartition(topic, 0);
        using var producer = Transactional("markers");
        for (var i = 0; i < 2; i++)
        {
            producer.BeginTransaction();
            producer.Produce(partition, Record("k", "v" + i));
            producer.CommitTransaction(TimeSpan.FromSeconds(30));
        }

        using var consumer = Backend.CreateConsumer(new ConsumerConfig { GroupId = "watermarks" });
        consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10)).High.Value.Should().Be(4, "two records and two commit markers");
        Read(IsolationLevel.ReadUncommitted, topic).Select(r => r.Offset).Should().Equal(0L, 2L);
    }

    [SkippableFact]
    public async Task Several_topics_commit_together_or_not_at_all()
    {
        Require(Capability.ReadCommitted);
        var topics = await Backend.CreateTopicsAsync(1, "task-events", "audit-log", "notification-queue");
        using var producer = Transactional("task-api");

        producer.BeginTransaction();
        producer.Produce(topics[0], Record("task-1", "created"));
        producer.Produce(topics[1], Record("task-1", "task_created"));
        producer.Produce(topics[2], Record("user-1", "task_assigned"));
        producer.CommitTransaction(TimeSpan.FromSeconds(30));
        producer.BeginTransaction();
        producer.Produce(topics[0], Record("task-2", "created"));
        producer.Produce(topics[1], Record("task-2", "task_created"));
        await Eventually.Until(() => Read(IsolationLevel.ReadUncommitted, topics).Count == 5, Deadline, "the partial writes reach the log");
        producer.AbortTransaction(TimeSpan.FromSeconds(30));

        var visible = Read(IsolationLevel.ReadCommitted, topics);
        visible.Should().HaveCount(3);
        visible.Should().NotContain(r => r.Key == "task-2");
    }

    [SkippableFact]
    public async Task Coordinator_aborts_a_transaction_older_than_its_timeout()
    {
        Require(Capability.CoordinatorTimeout);
        var topic = (await Backend.CreateTopicsAsync(1, "expired"))[0];
        using var slow = Backend.CreateProducer(new ProducerConfig { TransactionalId = "slow-" + Guid.NewGuid().ToString("N"), TransactionTimeoutMs = 1000, MessageTimeoutMs = 900 });
        slow.InitTransactions(TimeSpan.FromSeconds(30));
        slow.BeginTransaction();
        slow.Produce(topic, Record("k", "too-slow"));
        await Eventually.Until(() => Read(IsolationLevel.ReadUncommitted, topic).Count == 1, Deadline, "the record reaches the log");
        using (var plain = Backend.CreateProducer(new ProducerConfig()))
        {
            plain.Produce(topic, Record("k", "later"));
            plain.Flush(TimeSpan.FromSeconds(30));
        }

        // The open transaction holds back read_committed readers until the coordinator aborts it.
        await Eventually.Until(() => Read(IsolationLevel.ReadCommitted, topic).Count == 1, Deadline, "the coordinator aborts the expired transaction");
        Read(IsolationLevel.ReadCommitted, topic).Select(r => r.Value).Should().Equal("later");

        var commit = () => slow.CommitTransaction(TimeSpan.FromSeconds(30));
        commit.Should().Throw<KafkaException>("the coordinator has aborted the transaction and bumped the epoch");
    }

    [SkippableTheory]
    [MemberData(nameof(Protocols))]
    public async Task Consume_transform_produce_copies_every_record_exactly_once_through_an_abort(GroupProtocol protocol)
    {
        Require(Capability.ReadCommitted, Capability.TransactionalOffsets);
        await Backend.RequireProtocolAsync(protocol);
        var topics = await Backend.CreateTopicsAsync(3, "copy-in", "copy-out");
        const int PerPartition = 50;
        ProcessorHost.Seed(Backend.CreateProducer(new ProducerConfig()), topics[0], 3, PerPartition);
        var group = "copiers-" + Guid.NewGuid().ToString("N");
        var script = new CopyScript { OutputTopic = topics[1], FailOnceAt = "1:20" };

        await using (var host = new ProcessorHost(Backend.BootstrapServers, "0", topics[0], group, script, o =>
        {
            o.MaxBatchSize = 10;
            o.GroupProtocol = protocol;
        }, backend: Backend))
        {
            await host.StartAsync();
            await Eventually.Until(() => host.Processor.CommittedRecords >= 3 * PerPartition, Deadline, "every record is committed");
        }

        script.Failures.Should().Be(1);
        var output = Read(IsolationLevel.ReadCommitted, topics[1]);
        output.Should().HaveCount(3 * PerPartition).And.OnlyHaveUniqueItems(r => r.Value);
        await GroupAtEnd(group, topics[0], 3, PerPartition); // brokers before 2.5 show the last commit's offsets a little after it
    }

    [SkippableTheory]
    [MemberData(nameof(Protocols))]
    public async Task Rebalance_in_mid_transaction_keeps_consume_transform_produce_exactly_once(GroupProtocol protocol)
    {
        Require(Capability.ReadCommitted, Capability.TransactionalOffsets);
        await Backend.RequireProtocolAsync(protocol);
        var topics = await Backend.CreateTopicsAsync(4, "rebalance-in", "rebalance-out");
        const int PerPartition = 100;
        ProcessorHost.Seed(Backend.CreateProducer(new ProducerConfig()), topics[0], 4, PerPartition);
        var group = "rebalancers-" + Guid.NewGuid().ToString("N");
        var script = new CopyScript { OutputTopic = topics[1] };
        void LongTransactions(TransactionalProcessorOptions o)
        {
            o.MaxBatchSize = 1000;
            o.MaxBatchDuration = TimeSpan.FromSeconds(2);
            o.GroupProtocol = protocol;
            if (protocol == GroupProtocol.Classic)
            {
                // With the consumer protocol both are the broker's, and librdkafka refuses them.
                o.ConsumerSettings["heartbeat.interval.ms"] = "200";
                o.ConsumerSettings["session.timeout.ms"] = "6000";
            }
        }

        await using var one = new ProcessorHost(Backend.BootstrapServers, "0", topics[0], group, script, LongTransactions, backend: Backend);
        await one.StartAsync();
        await Eventually.Until(() => !script.Handled.IsEmpty, Deadline, "the first instance has a transaction open");
        await using var two = new ProcessorHost(Backend.BootstrapServers, "1", topics[0], group, script, LongTransactions, backend: Backend);
        await two.StartAsync(); // joining the group revokes partitions from the first instance, mid-transaction
        await GroupAtEnd(group, topics[0], 4, PerPartition);

        // The processor's revocation has no other trace; wait for it, since it may come after the last commit (the
        // first instance can commit everything before it learns of the new member: one heartbeat, or with KIP-848's
        // consumer protocol the broker's heartbeat interval, 5 s by default).
        await Eventually.Until(() => one.Logs.Entries.Any(e => e.Message.Contains("partitions revoked", StringComparison.Ordinal)), Deadline, "the first instance gives up partitions");
        var output = Read(IsolationLevel.ReadCommitted, topics[1]);
        output.Should().HaveCount(4 * PerPartition).And.OnlyHaveUniqueItems(r => r.Value);
    }

    private void Require(params Capability[] needed)
    {
        Backend.RequireAvailable();
        foreach (var capability in needed)
        {
            var reason = Backend.Lacks(capability);
            Skip.If(reason is not null, reason);
        }
    }

    private IProducer<byte[]?, byte[]?> Transactional(string id, bool unique = true)
    {
        var producer = Backend.CreateProducer(new ProducerConfig { TransactionalId = unique ? $"{id}-{Guid.NewGuid():N}" : id });
        producer.InitTransactions(TimeSpan.FromSeconds(30));
        return producer;
    }

    private List<ReadRecord> Read(IsolationLevel isolation, params string[] topics) => TopicReader.ReadAll(Backend, isolation, Deadline, topics);

    /// <summary>Polls until the group has committed <paramref name="end"/> for every partition: its offsets show a little after each commit before Kafka 2.5.</summary>
    private async Task GroupAtEnd(string group, string topic, int partitions, long end)
    {
        using var consumer = Backend.CreateConsumer(new ConsumerConfig { GroupId = group, EnableAutoCommit = false });
        var all = Enumerable.Range(0, partitions).Select(p => new TopicPartition(topic, p)).ToList();
        await Eventually.Until(() => GroupOffsets.Read(consumer, all), offsets => offsets.Values.All(o => o.Value == end), Deadline, $"the group commits offset {end} in every partition", GroupOffsets.Describe);
    }

    private static Message<byte[]?, byte[]?> Record(string key, string value) => new() { Key = Encoding.UTF8.GetBytes(key), Value = Encoding.UTF8.GetBytes(value) };
}

/// <summary>The scenarios on KafkaTx.Testing's in-memory cluster: always run.</summary>
public sealed class InMemory_Conformance() : ConformanceScenarios(new InMemoryBackend());

/// <summary>The scenarios on librdkafka's mock cluster, through the real client; what it cannot emulate is skipped.</summary>
public sealed class MockCluster_Conformance() : ConformanceScenarios(new MockClusterBackend()), IDisposable
{
    public void Dispose() => ((MockClusterBackend)Backend).Dispose();
}

/// <summary>The scenarios on a real broker (Testcontainers or KAFKATX_BOOTSTRAP_SERVERS); skipped, with the reason, without one.</summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealBroker_Conformance(KafkaBrokerFixture broker) : ConformanceScenarios(new RealBrokerBackend(broker));
