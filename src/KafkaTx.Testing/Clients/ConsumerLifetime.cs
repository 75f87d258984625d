using Confluent.Kafka;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// A consumer's life: open; closed, after revoking its partitions and leaving its group (a static member only
/// departs, keeping its place for its next incarnation); or crashed with its process, when it stays in its group until
/// its session times out, closing does nothing, and every further call fails.
/// </summary>
internal sealed class ConsumerLifetime(InMemoryKafkaCluster cluster, ConsumerSettings settings, GroupMembership membership, RebalanceCallbacks callbacks)
{
    private bool _closed;
    private bool _crashed;

    public void Close(IInMemoryClient consumer)
    {
        if (_closed || _crashed)
        {
            return;
        }

        callbacks.RevokeAllForLeaving();
        lock (cluster.Sync)
        {
            membership.Leave();
            _closed = true;
            Monitor.PulseAll(cluster.Sync);
        }

        cluster.Clients.Closed(consumer);
    }

    /// <summary>Dispose without Close: the member leaves without running its revoke callback.</summary>
    public void Dispose(IInMemoryClient consumer)
    {
        lock (cluster.Sync)
        {
            if (!_closed && !_crashed)
            {
                membership.Leave();
                _closed = true;
                Monitor.PulseAll(cluster.Sync);
            }
        }

        cluster.Clients.Closed(consumer);
    }

    /// <summary>Under the cluster's lock: the group keeps the member, and its partitions, until its session times out.</summary>
    public void Crash(long timestamp)
    {
        _crashed = true;
        membership.Crash(timestamp);
    }

    /// <summary>Under the cluster's lock: a crashed, fenced or closed consumer refuses the call.</summary>
    public void ThrowIfClosed(object consumer)
    {
        if (_crashed)
        {
            throw Crashes.Error();
        }

        if (membership.IsFenced)
        {
            throw new KafkaException(new Error(ErrorCode.FencedInstanceId, $"Fatal consumer error: another consumer with group.instance.id '{settings.GroupInstanceId}' joined the group: this one is fenced", true));
        }

        ObjectDisposedException.ThrowIf(_closed, consumer);
    }
}
