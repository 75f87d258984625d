using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Telemetry;

namespace KafkaTx.Processing;

/// <summary>
/// Rebalances. The callbacks run inside Consume, on the loop's thread: a revoke commits the open transaction before
/// the partitions are given up; a loss aborts it, since other members may own the partitions already.
/// </summary>
internal sealed partial class ProcessorEngine<TKey, TValue>
{
    private void OnPartitionsAssigned(IReadOnlyList<TopicPartition> partitions)
    {
        // Another member may have committed these partitions since this one last owned them.
        _committedPositions.Forget(partitions);
        _lastConsumedFrom = null;
        Log.PartitionsAssigned(_logger, Name, string.Join(", ", partitions));
    }

    private void OnPartitionsRevoked(IReadOnlyList<TopicPartitionOffset> partitions)
    {
        Log.PartitionsRevoked(_logger, Name, string.Join(", ", partitions.Select(p => p.TopicPartition)), _inTransaction);
        if (_inTransaction && State is ProcessorState.Running)
        {
            // Complete the open transaction before the partitions are given up: the callback must not return
            // while this member could still commit offsets for them. The loop's thread blocks here, so the commit's
            // continuations must not be queued for it.
            using (ProcessorThread.WithoutContext())
            {
                try
                {
                    CommitAsync(CancellationToken.None).GetAwaiter().GetResult();
                }
                catch (Exception e) when (e is KafkaException or InvalidOperationException or OperationCanceledException)
                {
                    // Never out of the callback (it would surface from Consume or Close): abort, and let the rewind
                    // and the next owner of the partitions redo the work.
                    Log.ProcessorFailed(_logger, Name, Id, e);
                    AbortAndRewindAsync("the commit on revoke failed").GetAwaiter().GetResult();
                }
            }
        }

        Forget(partitions.Select(p => p.TopicPartition));
    }

    private void OnPartitionsLost(IReadOnlyList<TopicPartitionOffset> partitions)
    {
        Log.PartitionsLost(_logger, Name, string.Join(", ", partitions.Select(p => p.TopicPartition)), _inTransaction);
        if (_inTransaction)
        {
            // Other members may own these partitions already: never commit, abort.
            using (ProcessorThread.WithoutContext())
            {
                AbortAndRewindAsync("partitions were lost").GetAwaiter().GetResult();
            }
        }

        Forget(partitions.Select(p => p.TopicPartition));
        _rewindPending = true;
    }

    private void Forget(IEnumerable<TopicPartition> partitions)
    {
        var gone = partitions.ToHashSet();
        _committedPositions.Forget(gone);
        _lastConsumedFrom = null;
        foreach (var key in _failures.Keys.Where(k => gone.Contains(k.TopicPartition)).ToList())
        {
            _failures.Remove(key);
        }

        foreach (var partition in gone)
        {
            _isolateThrough.Remove(partition);
        }
    }

    private void OnConsumerError(Error error) => Log.ConsumerError(_logger, Name, error.Code, error.Reason, error.IsFatal);

    private void OnConsumerLog(LogMessage message)
    {
        var level = Log.ToLogLevel(message.Level);
        if (_logger.IsEnabled(level))
        {
            Log.ClientLog(_logger, level, Name, message.Facility, message.Message);
        }
    }
}
