using Confluent.Kafka;
using KafkaTx.Testing.Broker;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// Finds a consumer's next record: round the assigned partitions that are not paused, each from the consumer's
/// position up to the end its isolation level allows (the last stable offset for read_committed), moving past markers
/// and aborted records as a Kafka consumer's position moves; with enable.partition.eof, it reports each end once.
/// Every member runs under the cluster's lock.
/// </summary>
internal sealed class RecordFetcher(Topics topics, ConsumerSettings settings)
{
    private readonly HashSet<TopicPartition> _paused = [];
    private int _next;

    public void Pause(IEnumerable<TopicPartition> partitions) => _paused.UnionWith(partitions);

    public void Resume(IEnumerable<TopicPartition> partitions) => _paused.ExceptWith(partitions);

    public ConsumeResult<byte[]?, byte[]?>? Next(ConsumerAssignment assignment)
    {
        var isolation = settings.Isolation;
        var count = assignment.Count;
        for (var i = 0; i < count; i++)
        {
            var partition = assignment[(_next + i) % count];
            if (_paused.Contains(partition))
            {
                continue;
            }

            var log = topics.Log(partition);
            // Records deleted under the position: go on from the log start, as a consumer reset to the earliest offset.
            var position = Math.Max(assignment.FetchPosition(partition), log.LogStartOffset);
            var end = log.End(isolation);
            while (position < end && !log.IsVisible(position, isolation))
            {
                position++; // past markers and aborted records, as the position of a Kafka consumer moves
            }

            if (position < end)
            {
                ref readonly var entry = ref log.Entry(position);
                assignment.Consumed(partition, position);
                _next = (_next + i + 1) % count;
                return new ConsumeResult<byte[]?, byte[]?>
                {
                    TopicPartitionOffset = new TopicPartitionOffset(partition, position),
                    Message = new Message<byte[]?, byte[]?> { Key = entry.Key, Value = entry.Value, Headers = entry.Headers, Timestamp = entry.Timestamp },
                };
            }

            assignment.MoveTo(partition, position);
            if (settings.ReportEof && assignment.TryReportEnd(partition))
            {
                return new ConsumeResult<byte[]?, byte[]?> { TopicPartitionOffset = new TopicPartitionOffset(partition, position), IsPartitionEOF = true };
            }
        }

        return null;
    }
}
