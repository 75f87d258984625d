using System.Diagnostics.CodeAnalysis;

namespace KafkaTx.Testing.Broker;

/// <summary>
/// The rebalances waiting for a consumer, which runs their callbacks at its next Consume, on its own thread, as
/// Confluent.Kafka does. The group fills it; the consumer empties it. Under the cluster's lock.
/// </summary>
internal sealed class RebalanceInbox
{
    private readonly Queue<RebalanceEvent> _events = new();

    public bool IsEmpty => _events.Count == 0;

    public void Enqueue(RebalanceEvent rebalance) => _events.Enqueue(rebalance);

    public bool TryDequeue([NotNullWhen(true)] out RebalanceEvent? rebalance) => _events.TryDequeue(out rebalance);
}
