using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// Rewinds the consumer after an abort: every assigned partition goes back to its committed position before anything
/// else is consumed. Without it, the records whose outputs were aborted would be skipped for good.
/// </summary>
/// <remarks>
/// It knows where each partition's committed progress stands without asking the broker: the positions this processor
/// committed itself since the partition was assigned to it. A rewind seeks there, and asks the group only for the
/// partitions not committed since they were assigned. That saves a round trip per abort, and does not depend on how
/// soon a broker shows transactional offsets (brokers before 2.5, without KIP-447, show them a little after the
/// commit). Used on the processor's thread only (rebalance callbacks run there too). While the processor waits for
/// its group coordinator (<see cref="Hold"/>), the rewind asks the group for every assigned partition: that offset
/// fetch is the question whether the coordinator answers again, and until it does nothing is consumed or handled.
/// </remarks>
internal sealed class Rewinder(ProcessorTelemetry telemetry, TimeProvider? time = null)
{
    private static readonly TimeSpan CommittedOffsetsTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan HoldProbeTimeout = TimeSpan.FromSeconds(2); // bounds a stop during the hold
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(200);

    private readonly Dictionary<TopicPartition, Offset> _committed = [];
    private readonly Dictionary<TopicPartition, long> _firstConsumed = [];
    private TopicPartition? _lastConsumedFrom;

    /// <summary>
    /// Whether a rewind is due: nothing may be consumed until it is done, and a record Consume returned after it
    /// became due is dropped, since it may lie past records whose outputs were aborted.
    /// </summary>
    public bool IsPending { get; private set; }

    /// <summary>Whether the processor waits for its group coordinator before it consumes again.</summary>
    public CoordinatorHold Hold { get; } = new(telemetry, time ?? TimeProvider.System);

    /// <summary>
    /// A batch was aborted because the group coordinator did not take its offsets: the rewind that follows waits for
    /// the coordinator to answer.
    /// </summary>
    public void GroupCoordinatorUnreachable() => Hold.Begin();

    /// <summary>An abort made the consumer's position run ahead of what is committed.</summary>
    public void Require() => IsPending = true;

    /// <summary>
    /// A record was consumed: the first offset consumed from each partition since it was assigned is the rewind target
    /// of a partition with no committed offset yet (seeking to the reset position would skip records, with Latest).
    /// </summary>
    public void Consumed(TopicPartition partition, long offset) => Consumed(partition.Topic, partition.Partition.Value, offset);

    /// <inheritdoc cref="Consumed(TopicPartition, long)"/>
    public void Consumed(ConsumeResult<byte[]?, byte[]?> result) => Consumed(result.Topic, result.Partition.Value, result.Offset.Value);

    private void Consumed(string topic, int partition, long offset)
    {
        if (_lastConsumedFrom is { } last && last.Partition.Value == partition && ReferenceEquals(last.Topic, topic))
        {
            return; // records mostly come in runs from one partition: no TopicPartition is made for them
        }

        var where = new TopicPartition(topic, partition);
        _firstConsumed.TryAdd(where, offset);
        _lastConsumedFrom = where;
    }

    /// <summary>A transaction that sent these positions committed.</summary>
    public void Committed(IEnumerable<TopicPartitionOffset> positions)
    {
        foreach (var position in positions)
        {
            _committed[position.TopicPartition] = position.Offset;
        }

        Hold.End(); // the coordinator took the offsets
    }

    /// <summary>A commit that covered these partitions has an unknown outcome: their committed positions must be asked for.</summary>
    public void CommitOutcomeUnknown(IEnumerable<TopicPartition> partitions)
    {
        foreach (var partition in partitions)
        {
            _committed.Remove(partition);
        }
    }

    /// <summary>What is known of these partitions no longer holds: they were (re)assigned, revoked or lost.</summary>
    public void Forget(IEnumerable<TopicPartition> partitions)
    {
        foreach (var partition in partitions)
        {
            _committed.Remove(partition);
            _firstConsumed.Remove(partition);
        }

        _lastConsumedFrom = null;
    }

    /// <summary>
    /// Moves every assigned partition back to its committed position: the one this processor committed itself when it
    /// has committed the partition since it was assigned, else the group's (fetched for those partitions only), else,
    /// with nothing committed at all, the first offset this processor consumed there since the partition was assigned.
    /// </summary>
    /// <returns>False when the group's offsets could not be read; the loop then tries again.</returns>
    public bool TryRewind(IConsumer<byte[]?, byte[]?> consumer)
    {
        var assignment = consumer.Assignment;
        if (assignment.Count == 0)
        {
            // Nothing to consume, so nothing to hold for: a batch of partitions assigned later sends its offsets, and
            // holds again if the coordinator still does not answer.
            Hold.Release();
            IsPending = false;
            return true;
        }

        var (targets, unknown) = Split(assignment);
        var held = Hold.IsHeld;
        if (unknown.Count > 0 || held)
        {
            List<TopicPartitionOffset> committed;
            try
            {
                // Held: the whole assignment is asked for, as the probe of the coordinator; only the unknown are used.
                committed = held ? consumer.Committed(assignment, HoldProbeTimeout) : consumer.Committed(unknown, CommittedOffsetsTimeout);
            }
            catch (KafkaException e)
            {
                if (!held)
                {
                    telemetry.RewindFailed(e); // held: event 192 said it once, and every probe fails until the coordinator is back
                }

                return false;
            }

            Hold.End();
            foreach (var position in committed)
            {
                if (held && !unknown.Contains(position.TopicPartition))
                {
                    continue; // known here: this processor committed it since the partition was assigned
                }

                if (position.Offset != Offset.Unset)
                {
                    targets.Add(position);
                }
                else if (_firstConsumed.TryGetValue(position.TopicPartition, out var first))
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
                consumer.Seek(target);
            }
            catch (KafkaException e)
            {
                // Not fetching yet: it will start from the committed offset anyway.
                telemetry.SeekSkipped(target.TopicPartition, e);
            }
        }

        telemetry.Rewound(targets, unknown.Count);
        IsPending = false;
        return true;
    }

    /// <summary>
    /// After a failed <see cref="TryRewind"/>: waits a little before the next try. While the processor holds for its
    /// group coordinator, the wait is a poll, so that the consumer stays in the group (max.poll.interval.ms) and its
    /// rebalance callbacks run; a record it returns is dropped (the rewind reads it again), but its offset is noted,
    /// as any consumed record's, for the rewind of a partition with nothing committed.
    /// </summary>
    public Task WaitToRetryAsync(IConsumer<byte[]?, byte[]?> consumer, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (!Hold.IsHeld)
        {
            return Task.Delay(RetryDelay, clock, cancellationToken);
        }

        try
        {
            if (consumer.Consume(RetryDelay) is { IsPartitionEOF: false } dropped)
            {
                Consumed(dropped);
            }
        }
        catch (ConsumeException e) when (!e.Error.IsFatal)
        {
            telemetry.ConsumerError(e.Error); // as in the loops: librdkafka recovers on its own
        }

        return Task.CompletedTask;
    }

    /// <summary>Splits an assignment into the positions known here and the partitions whose position must be fetched.</summary>
    private (List<TopicPartitionOffset> Known, List<TopicPartition> Unknown) Split(List<TopicPartition> assignment)
    {
        var known = new List<TopicPartitionOffset>();
        var unknown = new List<TopicPartition>();
        foreach (var partition in assignment)
        {
            if (_committed.TryGetValue(partition, out var offset))
            {
                known.Add(new TopicPartitionOffset(partition, offset));
            }
            else
            {
                unknown.Add(partition);
            }
        }

        return (known, unknown);
    }
}
