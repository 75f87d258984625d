using Confluent.Kafka;

namespace KafkaTx.Tests.Fakes;

internal sealed class FakeGroupMetadata : IConsumerGroupMetadata
{
}
