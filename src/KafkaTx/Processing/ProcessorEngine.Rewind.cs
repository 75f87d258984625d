using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Telemetry;

namespace KafkaTx.Processing;

/// <summary>Rewinding after an abort: without it, the records whose outputs were aborted would be skipped for good.</summary>
internal sealed partial class ProcessorEngine<TKey, TValue>
{
    /// <summary>
    /// Moves every assigned partition back to its committed position: the one this processor committed itself when it
    /// has committed the partition since it was assigned, else the group's (fetched for those partitions only), else,
    /// with nothing committed at all, the first offset this processor consumed there since the partition was assigned.
    /// False when the group's offsets could not be read; the loop then tries again.
    /// </summary>
    private bool TryRewind()
    {
        var assignment = _consumer!.Assignment;
        if (assignment.Count == 0)
        {
            _rewindPending = false;
            return true;
        }

        var (targets, unknown) = _committedPositions.Split(assignment);
        if (unknown.Count > 0)
        {
            List<TopicPartitionOffset> committed;
            try
            {
                committed = _consumer.Committed(unknown, CommittedOffsetsTimeout);
            }
            catch (KafkaException e)
            {
                Log.RewindFailed(_logger, Name, Id, e);
                return false;
            }

            foreach (var position in committed)
            {
                if (position.Offset != Offset.Unset)
                {
                    targets.Add(position);
                }
                else if (_committedPositions.FirstConsumed(position.TopicPartition) is { } first)
                {
                    // Nothing committed yet: back to the first record this processor read there. The reset policy's
                    // position would skip the aborted records with Latest (the end has moved on since).
                    targets.Add(new TopicPartitionOffset(position.TopicPartition, first));
                }

                // Nothing committed and nothing read: the consumer has not moved there, so it stays where it is.
            }
        }

        foreach (var target in targets)
        {
            try
            {
                _consumer.Seek(target);
            }
            catch (KafkaException e)
            {
                // Not fetching yet: it will start from the committed offset anyway.
                Log.SeekSkipped(_logger, Name, target.TopicPartition.ToString(), e.Error.Reason);
            }
        }

        _instrumentation.ProcessorRewinds.Add(1, _tags);
        Log.Rewound(_logger, Name, string.Join(", ", targets.Select(t => t.ToString())), unknown.Count);
        _rewindPending = false;
        return true;
    }
}
