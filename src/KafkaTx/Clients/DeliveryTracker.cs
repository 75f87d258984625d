using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace KafkaTx.Clients;

/// <summary>The delivery reports of one producer's records: how many are pending, and which Kafka refused.</summary>
/// <remarks>
/// Records sent and reports received are counted apart, on separate cache lines: the producing threads write one,
/// Confluent.Kafka's poll thread the other, and a single shared counter would bounce between the two cores on
/// every record.
/// </remarks>
internal sealed class DeliveryTracker
{
    private readonly Lock _lock = new();
    private readonly List<DeliveryFailure> _failures = [];
    private Counters _counters;

    public DeliveryTracker() => OnDelivery = Delivered;

    /// <summary>One delegate per producer, so that producing allocates none.</summary>
    public Action<DeliveryReport<byte[]?, byte[]?>> OnDelivery { get; }

    public int Pending => (int)(Volatile.Read(ref _counters.Sent) - Volatile.Read(ref _counters.Reported));

    public void Sent() => Interlocked.Increment(ref _counters.Sent);

    public void NotSent() => Interlocked.Decrement(ref _counters.Sent);

    public List<DeliveryFailure> SnapshotFailures()
    {
        lock (_lock)
        {
            return [.. _failures];
        }
    }

    public void ClearFailures()
    {
        lock (_lock)
        {
            _failures.Clear();
        }
    }

    private void Delivered(DeliveryReport<byte[]?, byte[]?> report)
    {
        // Purged records belong to a transaction that is being aborted anyway; they are not failures to report.
        var error = report.Error;
        if (error.IsError && error.Code is not (ErrorCode.Local_PurgeQueue or ErrorCode.Local_PurgeInflight))
        {
            lock (_lock)
            {
                _failures.Add(new DeliveryFailure(report.TopicPartition, error));
            }
        }

        Interlocked.Increment(ref _counters.Reported);
    }

    [StructLayout(LayoutKind.Explicit, Size = 192)]
    private struct Counters
    {
        [FieldOffset(64)]
        public long Sent;

        [FieldOffset(128)]
        public long Reported;
    }
}
