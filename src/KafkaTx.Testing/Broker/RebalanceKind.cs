namespace KafkaTx.Testing.Broker;

/// <summary>What a rebalance does to a member's partitions; each runs the consumer's callback of the same name.</summary>
internal enum RebalanceKind
{
    Assign,
    Revoke,
    Lost,
}
