using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>A rebalance the group sends one member: partitions assigned, to revoke, or lost.</summary>
internal sealed record RebalanceEvent(RebalanceKind Kind, List<TopicPartition> Partitions);
