using Confluent.Kafka;
using KafkaTx.Tests.Fakes;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>Which records get a delivery report (DeliveryTracking), and what a refusal reports under each choice.</summary>
public class DeliveryTrackingTests
{
    private static ValueTask WriteAcrossTopics(ITransactionScope scope, CancellationToken _)
    {
        foreach (var topic in new[] { "task-events", "task-events", "audit-log", "task-events", "audit-log" })
        {
            scope.Produce(topic, new Message<string, string> { Key = "task-1", Value = "v" });
        }

        return ValueTask.CompletedTask;
    }

    [Theory]
    [InlineData(DeliveryTracking.EveryRecord, new[] { "task-events", "task-events", "audit-log", "task-events", "audit-log" })]
    [InlineData(DeliveryTracking.FirstRecordPerTopic, new[] { "task-events", "audit-log" })]
    [InlineData(DeliveryTracking.None, new string[0])]
    public async Task Each_choice_tracks_the_records_it_says(DeliveryTracking tracking, string[] tracked)
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.DeliveryTracking = tracking);
        await using var _ = unit;

        await unit.ExecuteAsync(WriteAcrossTopics);

        producer.TrackedTopics.Should().Equal(tracked);
        producer.Committed.Should().HaveCount(5);
    }

    [Fact]
    public async Task First_record_per_topic_starts_over_with_every_transaction()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.DeliveryTracking = DeliveryTracking.FirstRecordPerTopic);
        await using var _ = unit;

        await unit.ExecuteAsync(WriteAcrossTopics);
        await unit.ExecuteAsync(WriteAcrossTopics);

        producer.TrackedTopics.Should().Equal("task-events", "audit-log", "task-events", "audit-log");
    }

    [Fact]
    public async Task With_first_record_per_topic_a_topic_that_does_not_exist_is_rejected_at_once_naming_it()
    {
        var (unit, producer) = await TestUnits.CreateReady(o =>
        {
            o.DeliveryTracking = DeliveryTracking.FirstRecordPerTopic;
            o.Retry.MaxAttempts = 5;
        });
        await using var _ = unit;
        producer.DeliveryError = (topic, _) => topic == "audit-log" ? new Error(ErrorCode.UnknownTopicOrPart, "Broker: Unknown topic or partition") : null;

        var failure = await unit.Awaiting(u => u.ExecuteAsync(WriteAcrossTopics)).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        failure.Which.FailedDeliveries.Should().ContainSingle("only the topic's first record is tracked").Which.TopicPartition.Topic.Should().Be("audit-log");
        producer.CallCount("Begin").Should().Be(1, "a rejection is not retried");
        producer.Committed.Should().BeEmpty();
    }

    [Fact]
    public async Task Records_produced_from_several_threads_track_each_topic_once()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.DeliveryTracking = DeliveryTracking.FirstRecordPerTopic);
        await using var _ = unit;

        await unit.ExecuteAsync((scope, _) =>
        {
            Parallel.For(0, 400, i => scope.Produce("topic-" + (i % 4), new Message<string, string> { Key = "k", Value = "v" }));
            return ValueTask.CompletedTask;
        });

        producer.TrackedTopics.Should().HaveCount(4).And.OnlyHaveUniqueItems();
        producer.Committed.Should().HaveCount(400);
    }
}
