using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using KafkaTx.Testing.Broker;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// The partitions assigned to a consumer, in the order they were assigned, and its position in each: where reading
/// starts (an offset asked for, else the group's committed offset, else auto.offset.reset), seeks, the fetch's
/// progress, and whether the end was reported since the position last moved. Every member runs under the cluster's lock.
/// </summary>
internal sealed class ConsumerAssignment(Topics topics, GroupCoordinator groups, ConsumerSettings settings)
{
    private readonly List<TopicPartition> _partitions = [];
    private readonly Dictionary<TopicPartition, Position> _positions = [];

    public int Count => _partitions.Count;

    public TopicPartition this[int index] => _partitions[index];

    public List<TopicPartition> ToList() => [.. _partitions];

    /// <summary>Adds partitions, or moves those already assigned, to their starting positions.</summary>
    public void Add(IEnumerable<TopicPartitionOffset> partitions)
    {
        foreach (var requested in partitions)
        {
            var partition = requested.TopicPartition;
            var position = StartingPosition(partition, requested.Offset);
            if (!_partitions.Contains(partition))
            {
                _partitions.Add(partition);
            }

            _positions[partition] = new Position(position, EndReported: false);
        }
    }

    public void Remove(IReadOnlyCollection<TopicPartition> partitions)
    {
        _partitions.RemoveAll(partitions.Contains);
        foreach (var partition in partitions)
        {
            _positions.Remove(partition);
        }
    }

    public void Clear()
    {
        _partitions.Clear();
        _positions.Clear();
    }

    public Offset PositionOf(TopicPartition partition) => _positions.TryGetValue(partition, out var position) ? position.Offset : Offset.Unset;

    /// <summary>The partitions with the consumer's position in each, as rebalance callbacks receive them.</summary>
    public List<TopicPartitionOffset> WithPositions(IEnumerable<TopicPartition> partitions) => [.. partitions.Select(p => new TopicPartitionOffset(p, PositionOf(p)))];

    /// <summary>Every assigned partition with its position.</summary>
    public List<TopicPartitionOffset> AllWithPositions() => [.. _partitions.Select(p => new TopicPartitionOffset(p, _positions[p].Offset))];

    public void Seek(TopicPartitionOffset seek)
    {
        if (!_positions.ContainsKey(seek.TopicPartition))
        {
            throw new KafkaException(new Error(ErrorCode.Local_State, $"Local: Erroneous state: {seek.TopicPartition} is not assigned"));
        }

        var offset = seek.Offset == Offset.Beginning ? 0 : seek.Offset == Offset.End ? topics.Log(seek.TopicPartition).HighWatermark : seek.Offset.Value;
        _positions[seek.TopicPartition] = new Position(offset, EndReported: false);
    }

    /// <summary>Where the next fetch from an assigned partition reads.</summary>
    public long FetchPosition(TopicPartition partition) => _positions[partition].Offset;

    /// <summary>The fetch moved past what the consumer does not see (markers, aborted records) without returning a record.</summary>
    public void MoveTo(TopicPartition partition, long offset) => PositionRef(partition).Offset = offset;

    /// <summary>The record at <paramref name="offset"/> was returned: the position moves past it.</summary>
    public void Consumed(TopicPartition partition, long offset)
    {
        ref var position = ref PositionRef(partition);
        position.Offset = offset + 1;
        position.EndReported = false;
    }

    /// <summary>True the first time the end of the partition is reached since the position last moved.</summary>
    public bool TryReportEnd(TopicPartition partition)
    {
        ref var position = ref PositionRef(partition);
        if (position.EndReported)
        {
            return false;
        }

        position.EndReported = true;
        return true;
    }

    private ref Position PositionRef(TopicPartition partition)
    {
        ref var position = ref CollectionsMarshal.GetValueRefOrNullRef(_positions, partition);
        if (Unsafe.IsNullRef(ref position))
        {
            throw new KeyNotFoundException($"{partition} is not assigned.");
        }

        return ref position;
    }

    private long StartingPosition(TopicPartition partition, Offset requested)
    {
        var log = topics.Log(partition);
        if (requested == Offset.Beginning)
        {
            return 0;
        }

        if (requested == Offset.End)
        {
            return log.HighWatermark;
        }

        if (requested.Value >= 0)
        {
            return requested.Value;
        }

        if (settings.GroupId is { } groupId && groups.CommittedOffset(groupId, partition) is { } committed)
        {
            return committed;
        }

        return settings.ResetToEarliest ? 0 : log.HighWatermark;
    }

    private record struct Position(long Offset, bool EndReported);
}
