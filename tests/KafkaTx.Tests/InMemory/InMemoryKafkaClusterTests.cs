using System.Text;
using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Testing.Clients;

namespace KafkaTx.Tests.InMemory;

/// <summary>Kafka's transactional semantics, as the in-memory cluster keeps them.</summary>
public class InMemoryKafkaClusterTests
{
    private static readonly TopicPartition P0 = new("t", 0);

    private static Message<byte[]?, byte[]?> Record(string key, string value) => new() { Key = Encoding.UTF8.GetBytes(key), Value = Encoding.UTF8.GetBytes(value) };

    private static IProducer<byte[]?, byte[]?> Transactional(InMemoryKafkaCluster cluster, string id, int timeoutMs = 60_000)
    {
        var producer = cluster.CreateProducer(new ProducerConfig { TransactionalId = id, TransactionTimeoutMs = timeoutMs });
        producer.InitTransactions(TimeSpan.FromSeconds(1));
        return producer;
    }

    [Fact]
    public void A_committed_transaction_is_visible_to_read_committed_and_an_aborted_one_only_to_read_uncommitted()
    {
        var cluster = new InMemoryKafkaCluster();
        var producer = Transactional(cluster, "p");

        producer.BeginTransaction();
        producer.Produce(P0, Record("a", "committed"));
        producer.CommitTransaction(TimeSpan.FromSeconds(1));
        producer.BeginTransaction();
        producer.Produce(P0, Record("b", "aborted"));
        producer.AbortTransaction(TimeSpan.FromSeconds(1));

        cluster.ReadPartition(P0).Select(r => r.ValueText).Should().Equal("committed");
        cluster.ReadPartition(P0, IsolationLevel.ReadUncommitted).Select(r => r.ValueText).Should().Equal("committed", "aborted");
    }

    [Fact]
    public void An_open_transaction_holds_the_last_stable_offset_until_it_commits()
    {
        var cluster = new InMemoryKafkaCluster();
        var plain = cluster.CreateProducer(new ProducerConfig());
        plain.Produce(P0, Record("x", "before"));
        var producer = Transactional(cluster, "p");
        producer.BeginTransaction();
        producer.Produce(P0, Record("y", "open"));
        plain.Produce(P0, Record("z", "after"));

        cluster.LastStableOffset(P0).Should().Be(1);
        cluster.ReadPartition(P0).Select(r => r.ValueText).Should().Equal("before");
        cluster.ReadPartition(P0, IsolationLevel.ReadUncommitted).Select(r => r.ValueText).Should().Equal("before", "open", "after");

        producer.CommitTransaction(TimeSpan.FromSeconds(1));
        cluster.ReadPartition(P0).Select(r => r.ValueText).Should().Equal("before", "open", "after");
    }

    [Fact]
    public void Commit_and_abort_markers_occupy_offsets()
    {
        var cluster = new InMemoryKafkaCluster();
        var producer = Transactional(cluster, "p");
        for (var i = 0; i < 2; i++)
        {
            producer.BeginTransaction();
            producer.Produce(P0, Record("k", "v" + i));
            producer.CommitTransaction(TimeSpan.FromSeconds(1));
        }

        cluster.HighWatermark(P0).Should().Be(4);
        cluster.ReadPartition(P0).Select(r => r.Offset).Should().Equal(0L, 2L);
    }

    [Fact]
    public void A_second_instance_fences_the_first_with_the_exceptions_Confluent_Kafka_raises()
    {
        var cluster = new InMemoryKafkaCluster();
        var zombie = Transactional(cluster, "task-processor-1");
        zombie.BeginTransaction();
        zombie.Produce(P0, Record("task-1", "from-zombie"));

        var successor = Transactional(cluster, "task-processor-1");

        var commit = () => zombie.CommitTransaction(TimeSpan.FromSeconds(1));
        var fenced = commit.Should().Throw<KafkaException>().Which;
        fenced.Should().NotBeOfType<KafkaTxnRequiresAbortException>().And.NotBeOfType<KafkaRetriableException>();
        fenced.Error.Code.Should().Be(ErrorCode.Local_Fenced);
        fenced.Error.IsFatal.Should().BeTrue();
        var produce = () => zombie.Produce(P0, Record("task-1", "late"));
        produce.Should().Throw<ProduceException<byte[]?, byte[]?>>().Which.Error.Code.Should().Be(ErrorCode.Local_Fenced);

        successor.BeginTransaction();
        successor.Produce(P0, Record("task-1", "from-successor"));
        successor.CommitTransaction(TimeSpan.FromSeconds(1));
        cluster.ReadPartition(P0).Select(r => r.ValueText).Should().Equal("from-successor");
    }

    [Fact]
    public void Offsets_sent_to_a_transaction_take_effect_only_if_it_commits()
    {
        var cluster = new InMemoryKafkaCluster();
        var consumer = cluster.CreateConsumer(new ConsumerConfig { GroupId = "g" });
        var producer = Transactional(cluster, "p");
        var input = new TopicPartition("in", 0);

        producer.BeginTransaction();
        producer.SendOffsetsToTransaction([new TopicPartitionOffset(input, 5)], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(1));
        producer.AbortTransaction(TimeSpan.FromSeconds(1));
        cluster.CommittedOffset("g", input).Should().BeNull();

        producer.BeginTransaction();
        producer.SendOffsetsToTransaction([new TopicPartitionOffset(input, 5)], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(1));
        producer.CommitTransaction(TimeSpan.FromSeconds(1));
        cluster.CommittedOffset("g", input).Should().Be(5);
        consumer.Committed([input], TimeSpan.FromSeconds(1)).Single().Offset.Value.Should().Be(5);
    }

    [Fact]
    public void The_coordinator_aborts_a_transaction_older_than_its_timeout_and_fences_the_late_producer()
    {
        var clock = new ManualClock();
        var cluster = new InMemoryKafkaCluster(timeProvider: clock);
        var producer = Transactional(cluster, "slow", timeoutMs: 10_000);
        producer.BeginTransaction();
        producer.Produce(P0, Record("k", "too-slow"));
        cluster.LastStableOffset(P0).Should().Be(0);

        clock.Advance(TimeSpan.FromSeconds(11));

        cluster.LastStableOffset(P0).Should().Be(2, "the record and the abort marker");
        cluster.ReadPartition(P0).Should().BeEmpty();
        var commit = () => producer.CommitTransaction(TimeSpan.FromSeconds(1));
        commit.Should().Throw<KafkaException>().Which.Error.Code.Should().Be(ErrorCode.Local_Fenced);
    }

    [Fact]
    public void Deleting_records_moves_the_log_start_keeps_offsets_and_never_passes_an_open_transaction()
    {
        var cluster = new InMemoryKafkaCluster();
        var plain = cluster.CreateProducer(new ProducerConfig());
        for (var i = 0; i < 4; i++)
        {
            plain.Produce(P0, Record("k", "v" + i));
        }

        var open = Transactional(cluster, "open");
        open.BeginTransaction();
        open.Produce(P0, Record("k", "pending")); // offset 4, open: the last stable offset stays at 4
        using var consumer = cluster.CreateConsumer(new ConsumerConfig { GroupId = "g" });
        consumer.Assign(new TopicPartitionOffset(P0, 0));

        cluster.DeleteRecordsBefore(P0, 2);
        cluster.ReadPartition(P0).Select(r => (r.Offset, r.ValueText)).Should().Equal((2L, "v2"), (3L, "v3"));
        consumer.Consume(TimeSpan.FromSeconds(1))!.Offset.Value.Should().Be(2, "a consumer below the log start goes on from it");

        cluster.DeleteRecordsBefore(P0, 10);
        cluster.ReadPartition(P0, IsolationLevel.ReadUncommitted).Select(r => r.ValueText).Should().Equal("pending");
        cluster.HighWatermark(P0).Should().Be(5);

        open.CommitTransaction(TimeSpan.FromSeconds(1));
        cluster.ReadPartition(P0).Select(r => (r.Offset, r.ValueText)).Should().Equal((4L, "pending"));
    }

    [Fact]
    public void Keys_are_partitioned_by_CRC32_as_librdkafka_does()
    {
        Crc32.Compute(Encoding.ASCII.GetBytes("123456789")).Should().Be(0xCBF43926u);
        var cluster = new InMemoryKafkaCluster(defaultPartitions: 6);
        var producer = cluster.CreateProducer(new ProducerConfig());
        for (var i = 0; i < 3; i++)
        {
            producer.Produce("keyed", Record("order-42", "v" + i));
        }

        var expected = (int)(Crc32.Compute(Encoding.UTF8.GetBytes("order-42")) % 6);
        cluster.ReadPartition(new TopicPartition("keyed", expected), IsolationLevel.ReadUncommitted).Should().HaveCount(3);
    }

    [Fact]
    public void Fault_injection_shapes_commit_failures_as_the_real_client_does()
    {
        var cluster = new InMemoryKafkaCluster();
        var producer = Transactional(cluster, "faulty");

        cluster.FailNextCommit("faulty", ErrorCode.TransactionCoordinatorFenced);
        producer.BeginTransaction();
        producer.Produce(P0, Record("k", "v"));
        var abortable = () => producer.CommitTransaction(TimeSpan.FromSeconds(1));
        abortable.Should().Throw<KafkaTxnRequiresAbortException>();
        producer.AbortTransaction(TimeSpan.FromSeconds(1));

        cluster.FailNextCommit("faulty", ErrorCode.ConcurrentTransactions);
        producer.BeginTransaction();
        producer.Produce(P0, Record("k", "absorbed"));
        producer.CommitTransaction(TimeSpan.FromSeconds(1));
        cluster.ReadPartition(P0).Select(r => r.ValueText).Should().Equal("absorbed");

        cluster.DelayNextCommit("faulty", TimeSpan.FromMilliseconds(300));
        producer.BeginTransaction();
        producer.Produce(P0, Record("k", "slow"));
        var timedOut = () => producer.CommitTransaction(TimeSpan.FromMilliseconds(10));
        timedOut.Should().Throw<KafkaRetriableException>().Which.Error.Code.Should().Be(ErrorCode.Local_TimedOut);
        producer.CommitTransaction(TimeSpan.FromSeconds(5));
        cluster.ReadPartition(P0).Select(r => r.ValueText).Should().Equal("absorbed", "slow");

        cluster.FailNextCommit("faulty", ErrorCode.InvalidTxnState);
        producer.BeginTransaction();
        var fatal = () => producer.CommitTransaction(TimeSpan.FromSeconds(1));
        fatal.Should().Throw<KafkaException>().Which.Error.IsFatal.Should().BeTrue();
    }

    [Fact]
    public void Group_members_share_partitions_and_see_rebalances_through_their_callbacks()
    {
        var cluster = new InMemoryKafkaCluster();
        cluster.CreateTopic("in", 4);
        var events = new List<string>();
        ConsumerEventHandlers Handlers(string name) => new()
        {
            PartitionsAssigned = p => events.Add($"{name}+{string.Join(",", p.Select(x => x.Partition.Value))}"),
            PartitionsRevoked = p => events.Add($"{name}-{string.Join(",", p.Select(x => x.Partition.Value))}"),
            PartitionsLost = p => events.Add($"{name}!{string.Join(",", p.Select(x => x.Partition.Value))}"),
            Error = _ => { },
            Log = _ => { },
        };
        var config = new ConsumerConfig { GroupId = "g", PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky };
        var a = cluster.CreateConsumer(config, Handlers("a"));
        a.Subscribe("in");
        a.Consume(TimeSpan.Zero);
        a.Assignment.Should().HaveCount(4);

        var b = cluster.CreateConsumer(config, Handlers("b"));
        b.Subscribe("in");
        a.Consume(TimeSpan.Zero); // a gives up two partitions...
        b.Consume(TimeSpan.Zero); // ...and only then does b get them
        a.Assignment.Should().HaveCount(2);
        b.Assignment.Should().HaveCount(2);
        events.Should().Equal("a+0,1,2,3", "a-1,3", "b+1,3");

        cluster.ExpireMember(b);
        b.Consume(TimeSpan.Zero);
        a.Consume(TimeSpan.Zero);
        events.Should().EndWith(["b!1,3", "a+1,3"]);
        a.Assignment.Should().HaveCount(4);
    }
}
