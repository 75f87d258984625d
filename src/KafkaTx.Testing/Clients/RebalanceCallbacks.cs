using Confluent.Kafka;
using KafkaTx.Testing.Broker;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// Runs a consumer's rebalance callbacks on the thread that calls Consume (or Close), as Confluent.Kafka does, and
/// applies each rebalance to the assignment: partitions are added before the assign callback, and removed after the
/// revoke or lost one; a revoke is reported to the group only once its callback has returned. Callbacks run outside
/// the cluster's lock: they may produce, commit or abort through the same cluster.
/// </summary>
internal sealed class RebalanceCallbacks(object sync, ConsumerEventHandlers? handlers, GroupMembership membership, ConsumerAssignment assignment)
{
    public void DeliverPending()
    {
        while (true)
        {
            RebalanceEvent? rebalance;
            List<TopicPartitionOffset> withPositions;
            lock (sync)
            {
                if (!membership.Inbox.TryDequeue(out rebalance))
                {
                    return;
                }

                if (rebalance.Kind == RebalanceKind.Assign)
                {
                    assignment.Add(rebalance.Partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)));
                }

                withPositions = assignment.WithPositions(rebalance.Partitions);
            }

            switch (rebalance.Kind)
            {
                case RebalanceKind.Assign:
                    handlers?.PartitionsAssigned(rebalance.Partitions);
                    break;
                case RebalanceKind.Revoke:
                    handlers?.PartitionsRevoked(withPositions);
                    lock (sync)
                    {
                        assignment.Remove(rebalance.Partitions);
                        membership.Revoked(rebalance.Partitions);
                        Monitor.PulseAll(sync);
                    }

                    break;
                default:
                    handlers?.PartitionsLost(withPositions);
                    lock (sync)
                    {
                        assignment.Remove(rebalance.Partitions);
                    }

                    break;
            }
        }
    }

    /// <summary>Leaving the group revokes what the member owns, through its callback, as Close does in Confluent.Kafka.</summary>
    public void RevokeAllForLeaving()
    {
        List<TopicPartitionOffset> owned;
        lock (sync)
        {
            if (membership.Group is null || assignment.Count == 0)
            {
                return;
            }

            owned = assignment.AllWithPositions();
        }

        handlers?.PartitionsRevoked(owned);
        lock (sync)
        {
            assignment.Clear();
        }
    }
}
