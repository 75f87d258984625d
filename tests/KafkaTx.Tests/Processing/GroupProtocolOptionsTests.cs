using Confluent.Kafka;
using KafkaTx.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.Processing;

/// <summary>
/// TransactionalProcessorOptions.GroupProtocol: what each protocol puts in the consumer configuration, and the
/// settings refused with the consumer protocol (KIP-848), which librdkafka 2.16 itself refuses when building the consumer.
/// </summary>
public class GroupProtocolOptionsTests
{
    private static KafkaTransactionsOptions ProducerOptions() => new()
    {
        BootstrapServers = "fake:9092",
        TransactionalIdPrefix = "order-processor",
        InstanceId = "0",
    };

    private static IReadOnlyList<string> Failures(Action<TransactionalProcessorOptions> configure)
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "fake:9092";
            o.TransactionalIdPrefix = "order-processor";
            o.InstanceId = "0";
        }).AddTransactionalProcessor<CopyHandler>(_ => { });
        using var provider = services.BuildServiceProvider();
        var validator = provider.GetServices<IValidateOptions<TransactionalProcessorOptions>>().OfType<TransactionalProcessorOptionsValidator>().Single();
        var options = new TransactionalProcessorOptions { Topics = ["in"], GroupId = "g" };
        configure(options);
        return validator.Validate(string.Empty, options).Failures?.ToList() ?? [];
    }

    [Fact]
    public void The_default_is_the_classic_protocol_with_the_cooperative_sticky_assignor()
    {
        var options = new TransactionalProcessorOptions { Topics = ["in"], GroupId = "g" };

        var config = ProcessorConsumerConfig.Build(options, ProducerOptions());

        options.GroupProtocol.Should().Be(GroupProtocol.Classic);
        config.GroupProtocol.Should().Be(GroupProtocol.Classic);
        config.PartitionAssignmentStrategy.Should().Be(PartitionAssignmentStrategy.CooperativeSticky);
        Failures(_ => { }).Should().BeEmpty();
    }

    [Fact]
    public void The_consumer_protocol_sets_group_protocol_and_no_assignment_strategy()
    {
        var options = new TransactionalProcessorOptions { Topics = ["in"], GroupId = "g", GroupProtocol = GroupProtocol.Consumer };
        options.ConsumerSettings["group.remote.assignor"] = "range";

        var config = ProcessorConsumerConfig.Build(options, ProducerOptions());

        config.GroupProtocol.Should().Be(GroupProtocol.Consumer);
        config.PartitionAssignmentStrategy.Should().BeNull("librdkafka refuses partition.assignment.strategy with group.protocol=consumer");
        config.Where(pair => pair.Key == "partition.assignment.strategy").Should().BeEmpty();
        config.GroupRemoteAssignor.Should().Be("range");
        config.GroupInstanceId.Should().NotBeNullOrEmpty("static membership stays on with the consumer protocol");
        Failures(o =>
        {
            o.GroupProtocol = GroupProtocol.Consumer;
            o.ConsumerSettings["group.remote.assignor"] = "range";
        }).Should().BeEmpty();
    }

    [Fact]
    public void An_assignment_strategy_set_with_the_consumer_protocol_is_refused()
    {
        Failures(o =>
        {
            o.GroupProtocol = GroupProtocol.Consumer;
            o.AssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky;
        }).Should().ContainSingle().Which.Should()
            .Contain("AssignmentStrategy is set (CooperativeSticky) but GroupProtocol is Consumer")
            .And.Contain("the broker assigns the partitions")
            .And.Contain("group.remote.assignor");
    }

    [Fact]
    public void An_assignment_strategy_set_with_the_classic_protocol_is_accepted()
    {
        Failures(o => o.AssignmentStrategy = PartitionAssignmentStrategy.Range).Should().BeEmpty();
    }

    [Fact]
    public void A_raw_partition_assignment_strategy_is_refused_with_either_protocol()
    {
        foreach (var protocol in new[] { GroupProtocol.Classic, GroupProtocol.Consumer })
        {
            Failures(o =>
            {
                o.GroupProtocol = protocol;
                o.ConsumerSettings["partition.assignment.strategy"] = "range";
            }).Should().ContainSingle().Which.Should()
                .Contain("ConsumerSettings sets 'partition.assignment.strategy'")
                .And.Contain("group.remote.assignor");
        }
    }

    [Theory]
    [InlineData("session.timeout.ms", "group.consumer.session.timeout.ms")]
    [InlineData("heartbeat.interval.ms", "group.consumer.heartbeat.interval.ms")]
    [InlineData("group.protocol.type", "belongs to the classic protocol")]
    public void Settings_the_consumer_protocol_moves_to_the_broker_are_refused(string key, string reason)
    {
        Failures(o =>
        {
            o.GroupProtocol = GroupProtocol.Consumer;
            o.ConsumerSettings[key] = "10000";
        }).Should().ContainSingle().Which.Should()
            .Contain($"ConsumerSettings sets '{key}' but GroupProtocol is Consumer")
            .And.Contain(reason)
            .And.Contain("Remove it");
    }

    [Theory]
    [InlineData("session.timeout.ms")]
    [InlineData("heartbeat.interval.ms")]
    public void The_same_settings_are_accepted_with_the_classic_protocol(string key)
    {
        Failures(o => o.ConsumerSettings[key] = "10000").Should().BeEmpty();
    }

    [Theory]
    [InlineData(GroupProtocol.Classic, "classic")]
    [InlineData(GroupProtocol.Consumer, "consumer")]
    [InlineData(GroupProtocol.Consumer, " Consumer ")]
    public void A_raw_group_protocol_that_agrees_with_the_option_is_accepted(GroupProtocol protocol, string raw)
    {
        Failures(o =>
        {
            o.GroupProtocol = protocol;
            o.ConsumerSettings["group.protocol"] = raw;
        }).Should().BeEmpty();
    }

    [Fact]
    public void A_raw_group_protocol_that_contradicts_the_option_is_refused()
    {
        // The case: ConsumerSettings["group.protocol"] = "consumer" with the option left at Classic.
        Failures(o => o.ConsumerSettings["group.protocol"] = "consumer").Should().ContainSingle().Which.Should()
            .Contain("ConsumerSettings sets 'group.protocol' to 'consumer' but GroupProtocol is Classic")
            .And.Contain("Set TransactionalProcessorOptions.GroupProtocol instead");
    }

    [Fact]
    public void A_raw_group_protocol_of_neither_kind_is_refused()
    {
        Failures(o => o.ConsumerSettings["group.protocol"] = "streams").Should().ContainSingle().Which.Should()
            .Contain("'streams', which is neither 'classic' nor 'consumer'");
    }

    [Fact]
    public void A_remote_assignor_with_the_classic_protocol_is_refused()
    {
        Failures(o => o.ConsumerSettings["group.remote.assignor"] = "uniform").Should().ContainSingle().Which.Should()
            .Contain("'group.remote.assignor'")
            .And.Contain("GroupProtocol is Classic")
            .And.Contain("set GroupProtocol = Consumer");
    }

    [Fact]
    public void An_undefined_group_protocol_is_refused()
    {
        Failures(o => o.GroupProtocol = (GroupProtocol)7).Should().ContainSingle().Which.Should()
            .Contain("GroupProtocol is 7, not a GroupProtocol; use Classic or Consumer");
    }
}
