namespace KafkaTx.Testing.Broker;

/// <summary>What an offset of a partition holds: a record, or the marker that ends a transaction there.</summary>
internal enum ControlType
{
    None,
    Commit,
    Abort,
}
