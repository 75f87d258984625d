using System.Text;
using Confluent.Kafka;
using KafkaTx.Testing;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// The in-memory Kafka's consumer group protocol of KIP-848 (group.protocol=consumer): the settings librdkafka
/// refuses with it, who is refused on a duplicate group.instance.id, the member epoch checked on a transactional offset
/// commit, incremental rebalances only, and groups mixing both protocols (allowed, as Kafka's migration policy does).
/// </summary>
public class ConsumerProtocolInMemoryTests
{
    private static readonly TopicPartition P0 = new("in", 0);

    private static ConsumerConfig Config(string protocol, string? instanceId = null)
    {
        var config = new ConsumerConfig { GroupId = "g", GroupInstanceId = instanceId, AutoOffsetReset = AutoOffsetReset.Earliest };
        config.Set("group.protocol", protocol);
        return config;
    }

    private static IProducer<byte[]?, byte[]?> Transactional(InMemoryKafkaCluster cluster)
    {
        var producer = cluster.CreateProducer(new ProducerConfig { TransactionalId = "tx" });
        producer.InitTransactions(TimeSpan.FromSeconds(1));
        return producer;
    }

    private static void Produce(InMemoryKafkaCluster cluster, int count)
    {
        var plain = cluster.CreateProducer(new ProducerConfig());
        for (var i = 0; i < count; i++)
        {
            plain.Produce(P0, new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes($"k{i}"), Value = Encoding.UTF8.GetBytes($"v{i}") });
        }
    }

    [Theory]
    [InlineData("session.timeout.ms", "10000", "`session.timeout.ms` is not supported for `group.protocol=consumer`")]
    [InlineData("heartbeat.interval.ms", "1000", "`heartbeat.interval.ms` is not supported for `group.protocol=consumer`")]
    [InlineData("partition.assignment.strategy", "cooperative-sticky", "`partition.assignment.strategy` is not supported for `group.protocol=consumer`. Use `group.remote.assignor` instead")]
    public void The_consumer_protocol_refuses_the_settings_librdkafka_refuses_with_its_text(string key, string value, string message)
    {
        var cluster = new InMemoryKafkaCluster();
        var config = Config("consumer");
        config.Set(key, value);

        var create = () => cluster.CreateConsumer(config);

        create.Should().Throw<InvalidOperationException>().Which.Message.Should().StartWith(message);
        var classic = Config("classic");
        classic.Set(key, value);
        cluster.CreateConsumer(classic).Dispose(); // the classic protocol takes them
    }

    [Fact]
    public void With_the_consumer_protocol_the_newcomer_with_a_held_instance_id_is_refused_and_the_holder_keeps_running()
    {
        var cluster = new InMemoryKafkaCluster();
        Produce(cluster, 1);
        using var holder = cluster.CreateConsumer(Config("consumer", "i-1"));
        holder.Subscribe("in");
        holder.Consume(TimeSpan.FromSeconds(1)).Should().NotBeNull();

        using var newcomer = cluster.CreateConsumer(Config("consumer", "i-1"));
        newcomer.Subscribe("in");
        var refused = newcomer.Invoking(c => c.Consume(TimeSpan.FromMilliseconds(10))).Should().Throw<ConsumeException>().Which.Error;

        refused.Code.Should().Be(ErrorCode.UnreleasedInstanceId);
        refused.IsFatal.Should().BeTrue();
        holder.Consume(TimeSpan.FromMilliseconds(10)); // not fenced: it keeps consuming
        holder.Assignment.Should().Equal(P0);
    }

    [Fact]
    public void With_the_consumer_protocol_a_restart_is_refused_until_the_old_members_session_expires()
    {
        var time = new ManualClock();
        var cluster = new InMemoryKafkaCluster(timeProvider: time);
        var old = cluster.CreateConsumer(Config("consumer", "i-1"));
        old.Subscribe("in");
        old.Consume(TimeSpan.FromMilliseconds(10));
        cluster.CrashClients();

        using var early = cluster.CreateConsumer(Config("consumer", "i-1"));
        early.Subscribe("in");
        early.Invoking(c => c.Consume(TimeSpan.FromMilliseconds(10))).Should().Throw<ConsumeException>()
            .Which.Error.Code.Should().Be(ErrorCode.UnreleasedInstanceId);

        time.Advance(TimeSpan.FromSeconds(45)); // the broker's group.consumer.session.timeout.ms
        using var late = cluster.CreateConsumer(Config("consumer", "i-1"));
        late.Subscribe("in");
        late.Consume(TimeSpan.FromMilliseconds(10));
        late.Assignment.Should().Equal(P0);
    }

    [Fact]
    public void With_the_classic_protocol_the_old_holder_is_fenced_as_before()
    {
        var cluster = new InMemoryKafkaCluster();
        using var holder = cluster.CreateConsumer(Config("classic", "i-1"));
        holder.Subscribe("in");
        holder.Consume(TimeSpan.FromMilliseconds(10));
        using var newcomer = cluster.CreateConsumer(Config("classic", "i-1"));
        newcomer.Subscribe("in");
        newcomer.Consume(TimeSpan.FromMilliseconds(10));

        holder.Invoking(c => c.Consume(TimeSpan.FromMilliseconds(10))).Should().Throw<KafkaException>()
            .Which.Error.Code.Should().Be(ErrorCode.FencedInstanceId);
        newcomer.Assignment.Should().Equal(P0);
    }

    [Theory]
    [InlineData("consumer", ErrorCode.StaleMemberEpoch)]
    [InlineData("classic", ErrorCode.IllegalGeneration)]
    public void A_transactional_offset_commit_with_stale_metadata_fails_for_the_group_and_requires_an_abort(string protocol, ErrorCode expected)
    {
        var cluster = new InMemoryKafkaCluster();
        using var consumer = cluster.CreateConsumer(Config(protocol));
        consumer.Subscribe("in");
        consumer.Consume(TimeSpan.FromMilliseconds(10));
        var stale = consumer.ConsumerGroupMetadata;
        using var other = cluster.CreateConsumer(Config(protocol));
        other.Subscribe("in"); // a rebalance: a new generation, a new epoch
        var producer = Transactional(cluster);
        producer.BeginTransaction();

        var error = producer.Invoking(p => p.SendOffsetsToTransaction([new TopicPartitionOffset(P0, 1)], stale, TimeSpan.FromSeconds(1)))
            .Should().Throw<KafkaTxnRequiresAbortException>().Which.Error;

        error.Code.Should().Be(expected);
        TransactionErrorClassifier.Classify(new KafkaTxnRequiresAbortException(error)).Should().Be(TransactionErrorKind.Abortable);
        producer.Invoking(p => p.CommitTransaction(TimeSpan.FromSeconds(1))).Should().Throw<KafkaTxnRequiresAbortException>();
        producer.AbortTransaction(TimeSpan.FromSeconds(1));
        producer.BeginTransaction();
        producer.SendOffsetsToTransaction([new TopicPartitionOffset(P0, 1)], consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(1));
        producer.CommitTransaction(TimeSpan.FromSeconds(1));
        cluster.CommittedOffset("g", P0).Should().Be(1);
    }

    [Theory]
    [InlineData("consumer")]
    [InlineData("classic")]
    public void A_transactional_offset_commit_for_a_member_that_left_fails_with_UNKNOWN_MEMBER_ID(string protocol)
    {
        var cluster = new InMemoryKafkaCluster();
        var consumer = cluster.CreateConsumer(Config(protocol));
        consumer.Subscribe("in");
        consumer.Consume(TimeSpan.FromMilliseconds(10));
        var metadata = consumer.ConsumerGroupMetadata;
        consumer.Close();
        var producer = Transactional(cluster);
        producer.BeginTransaction();

        producer.Invoking(p => p.SendOffsetsToTransaction([new TopicPartitionOffset(P0, 1)], metadata, TimeSpan.FromSeconds(1)))
            .Should().Throw<KafkaTxnRequiresAbortException>().Which.Error.Code.Should().Be(ErrorCode.UnknownMemberId);
        cluster.CommittedOffset("g", P0).Should().BeNull();
    }

    [Fact]
    public void Consumer_protocol_rebalances_are_incremental_and_a_group_may_mix_both_protocols()
    {
        var cluster = new InMemoryKafkaCluster();
        cluster.CreateTopic("in", 2);
        var revoked = new List<TopicPartition>();
        var handlers = new ConsumerEventHandlers { PartitionsAssigned = _ => { }, PartitionsRevoked = p => revoked.AddRange(p.Select(x => x.TopicPartition)), PartitionsLost = _ => { }, Error = _ => { }, Log = _ => { } };
        using var first = cluster.CreateConsumer(Config("consumer"), handlers);
        first.Subscribe("in");
        first.Consume(TimeSpan.FromMilliseconds(10));
        first.Assignment.Should().HaveCount(2);

        using var classic = cluster.CreateConsumer(Config("classic"));
        classic.Subscribe("in");
        for (var i = 0; i < 5 && classic.Assignment.Count == 0; i++)
        {
            first.Consume(TimeSpan.FromMilliseconds(10));
            classic.Consume(TimeSpan.FromMilliseconds(10));
        }

        revoked.Should().ContainSingle("only the partition that moves is revoked: the rebalance is incremental");
        first.Assignment.Should().ContainSingle().And.NotContain(revoked);
        classic.Assignment.Should().Equal(revoked);
    }
}
