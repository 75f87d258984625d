namespace KafkaTx.Testing.Broker;

/// <summary>Where a transaction stands at the coordinator.</summary>
internal enum TransactionStatus
{
    Open,
    Committed,
    Aborted,
}
