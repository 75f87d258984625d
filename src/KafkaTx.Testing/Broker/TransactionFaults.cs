using Confluent.Kafka;

namespace KafkaTx.Testing.Broker;

/// <summary>
/// The faults a test injected for one transactional.id (InMemoryKafkaCluster.FailNextCommit, FailNextAbort and
/// DelayNextCommit), and the slow commit a delay, or an injected time-out, leaves pending until a later call completes
/// it. Every member runs under the cluster's lock.
/// </summary>
internal sealed class TransactionFaults(TimeProvider time)
{
    private readonly Queue<ErrorCode> _commitFailures = new();
    private readonly Queue<ErrorCode> _abortFailures = new();
    private TimeSpan? _commitDelay;
    private long? _commitPendingUntil;

    /// <summary>Whether a slow commit is still running on the coordinator.</summary>
    public bool CommitStillPending => _commitPendingUntil is { } until && until > time.GetTimestamp();

    public void FailNextCommit(ErrorCode error) => _commitFailures.Enqueue(error);

    public void FailNextAbort(ErrorCode error) => _abortFailures.Enqueue(error);

    public void DelayNextCommit(TimeSpan delay) => _commitDelay = delay;

    public bool TryTakeCommitFailure(out ErrorCode error) => _commitFailures.TryDequeue(out error);

    public bool TryTakeAbortFailure(out ErrorCode error) => _abortFailures.TryDequeue(out error);

    /// <summary>
    /// How long a commit called with <paramref name="timeout"/> waits for a slow coordinator: zero when no slow commit is
    /// pending (it completes at once), the rest of the delay when that fits in the timeout (it then completes), or the
    /// whole timeout (it then times out, unless the delay is over by then).
    /// </summary>
    public TimeSpan CommitWait(TimeSpan timeout, out bool waitsOutDelay)
    {
        if (_commitDelay is { } delay)
        {
            _commitDelay = null;
            _commitPendingUntil = time.GetTimestamp() + (long)(delay.TotalSeconds * time.TimestampFrequency);
        }

        waitsOutDelay = false;
        if (_commitPendingUntil is { } until)
        {
            var remaining = TimeSpan.FromSeconds((double)(until - time.GetTimestamp()) / time.TimestampFrequency);
            if (remaining > TimeSpan.Zero)
            {
                waitsOutDelay = remaining <= timeout;
                return waitsOutDelay ? remaining : timeout;
            }
        }

        return TimeSpan.Zero;
    }

    /// <summary>An injected time-out: the commit stays pending, and the next call completes it.</summary>
    public void LeaveCommitPending() => _commitPendingUntil = time.GetTimestamp();

    public void ClearPendingCommit() => _commitPendingUntil = null;
}
