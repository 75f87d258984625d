using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>How often a record failed, and its last error.</summary>
internal sealed record RecordFailure(int Attempts, Exception LastError);

/// <summary>
/// The processor's memory of failed records: how many times each record failed (a handler that threw, or Kafka
/// refusing the output it wrote), and the records of a refused batch that are committed one by one to find the one
/// at fault. A record whose attempts reach MaxAttempts is poison (<see cref="PoisonRecords"/>).
/// </summary>
/// <remarks>Used on the processor's thread only (rebalance callbacks run there too).</remarks>
internal sealed class RecordAttempts
{
    private readonly Dictionary<RecordKey, RecordFailure> _failures = [];
    private readonly Dictionary<TopicPartition, long> _isolateThrough = [];

    /// <summary>The record's failures so far, or null if it never failed.</summary>
    public RecordFailure? Of(RecordKey key) =>
        _failures.Count > 0 && _failures.TryGetValue(key, out var failure) ? failure : null; // no lookup on the everyday path

    /// <summary>Counts one more failure of the record.</summary>
    /// <returns>How many times it has failed now.</returns>
    public int Failed(RecordKey key, Exception error)
    {
        var attempts = (_failures.TryGetValue(key, out var previous) ? previous.Attempts : 0) + 1;
        _failures[key] = new RecordFailure(attempts, error);
        return attempts;
    }

    /// <summary>
    /// Kafka refused the output of a batch of several records, and which record wrote it is not known: each of them
    /// is committed on its own from now on, until one fails alone (and counts an attempt) or all have committed.
    /// </summary>
    public void Isolate(IReadOnlyList<RecordKey> records)
    {
        foreach (var key in records)
        {
            _isolateThrough[key.TopicPartition] = Math.Max(_isolateThrough.GetValueOrDefault(key.TopicPartition, -1), key.Offset);
        }
    }

    /// <summary>Whether a batch that ends with this record must commit now, to isolate the record at fault.</summary>
    public bool IsIsolating(RecordKey last) =>
        _isolateThrough.Count > 0 && _isolateThrough.TryGetValue(last.TopicPartition, out var through) && last.Offset <= through;

    /// <summary>These records committed: they are no longer suspects, nor failing.</summary>
    public void Committed(IReadOnlyList<RecordKey> records)
    {
        foreach (var key in records)
        {
            _failures.Remove(key);
            if (_isolateThrough.TryGetValue(key.TopicPartition, out var through) && key.Offset >= through)
            {
                _isolateThrough.Remove(key.TopicPartition);
            }
        }
    }

    /// <summary>These partitions are gone (revoked or lost): their next owner keeps its own count.</summary>
    public void Forget(IReadOnlySet<TopicPartition> gone)
    {
        foreach (var key in _failures.Keys.Where(k => gone.Contains(k.TopicPartition)).ToList())
        {
            _failures.Remove(key);
        }

        foreach (var partition in gone)
        {
            _isolateThrough.Remove(partition);
        }
    }
}
