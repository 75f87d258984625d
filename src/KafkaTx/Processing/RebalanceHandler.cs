using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// What a rebalance does to the open batch. The callbacks run inside Consume, on the processor's thread, so they may
/// complete the open transaction there and then: a revoke commits it before the partitions are given up (the callback
/// must not return while this member could still commit offsets for them); a loss aborts it, since other members may
/// own the partitions already, and rewinds. Either way, what this processor knew of the partitions is forgotten.
/// </summary>
internal sealed class RebalanceHandler(IOpenBatchControl batch, Rewinder rewinder, RecordAttempts attempts, ProcessorStatus status, ProcessorTelemetry telemetry)
{
    /// <summary>The consumer's callbacks: these, and the consumer's errors and logs.</summary>
    public ConsumerEventHandlers EventHandlers() => new()
    {
        PartitionsAssigned = OnPartitionsAssigned,
        PartitionsRevoked = OnPartitionsRevoked,
        PartitionsLost = OnPartitionsLost,
        Error = telemetry.ConsumerError,
        Log = telemetry.ConsumerLog,
    };

    private void OnPartitionsAssigned(IReadOnlyList<TopicPartition> partitions)
    {
        // Another member may have committed these partitions since this one last owned them.
        rewinder.Forget(partitions);
        telemetry.PartitionsAssigned(partitions);
    }

    private void OnPartitionsRevoked(IReadOnlyList<TopicPartitionOffset> partitions)
    {
        telemetry.PartitionsRevoked(partitions, batch.IsOpen);
        if (batch.IsOpen && batch.IsRunning)
        {
            // The loop's thread blocks here, so the commit's continuations must not be queued for it.
            using (ProcessorThread.WithoutContext())
            {
                try
                {
                    batch.CommitAsync(CancellationToken.None).GetAwaiter().GetResult();
                }
                catch (Exception e) when (e is KafkaException or InvalidOperationException or OperationCanceledException)
                {
                    // Never out of the callback (it would surface from Consume or Close): abort, and let the rewind
                    // and the next owner of the partitions redo the work.
                    telemetry.Failed(e);
                    AbortAndRewind("the commit on revoke failed");
                }
                catch (Exception e)
                {
                    // Anything else (user code: a handler that cannot be built, a scoped service that throws on
                    // dispose) stops the processor, as it does outside a callback; but the batch aborts here, before
                    // the partitions move, not after them.
                    AbortAndRewind("the commit on revoke failed");
                    status.Fail(e, status.IsFencing(e));
                }
            }
        }

        Forget(partitions);
    }

    private void OnPartitionsLost(IReadOnlyList<TopicPartitionOffset> partitions)
    {
        telemetry.PartitionsLost(partitions, batch.IsOpen);
        if (batch.IsOpen)
        {
            // Other members may own these partitions already: never commit, abort.
            using (ProcessorThread.WithoutContext())
            {
                AbortAndRewind("partitions were lost");
            }
        }

        Forget(partitions);
        rewinder.Require();
    }

    /// <summary>Aborts the open batch; whatever the abort throws stays in the callback and stops the processor.</summary>
    private void AbortAndRewind(string reason)
    {
        try
        {
            batch.AbortAndRewindAsync(reason).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            // The batch ended or not, the consumer must be rewound; the processor stops, and its shutdown aborts
            // whatever is still open.
            rewinder.Require();
            if (!status.HasFailed)
            {
                status.Fail(e, status.IsFencing(e));
            }
        }
    }

    private void Forget(IReadOnlyList<TopicPartitionOffset> partitions)
    {
        var gone = partitions.Select(p => p.TopicPartition).ToHashSet();
        batch.Leaving(gone);
        rewinder.Forget(gone);
        attempts.Forget(gone);
    }
}

/// <summary>The loop's open batch, as a rebalance sees it: whether there is one, and how to complete it.</summary>
internal interface IOpenBatchControl
{
    /// <summary>Whether a transaction is open.</summary>
    bool IsOpen { get; }

    /// <summary>Whether the processor is running (not starting, stopping on a failure, or stopped).</summary>
    bool IsRunning { get; }

    /// <summary>
    /// Commits the open batch with the offsets of its handled records (a revoke, inside its callback); a failure is
    /// handled as any commit's, except that it never backs off: that would hold the rebalance.
    /// </summary>
    Task CommitAsync(CancellationToken cancellationToken);

    /// <summary>Aborts the open batch and rewinds the consumer.</summary>
    Task AbortAndRewindAsync(string reason);

    /// <summary>Partitions are being revoked or lost: whatever the loop set on them in the consumer is undone.</summary>
    void Leaving(IEnumerable<TopicPartition> partitions);
}
