namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// The records consumed ahead of the handlers, queued per ordering lane. A lane is ready when it holds records and
/// none of its records is in flight; <see cref="TryTake"/> hands out the head of a ready lane and marks the lane busy
/// until <see cref="Release"/>. So the records of one lane are handled one at a time, in the order they came.
/// </summary>
/// <remarks>Used on the processor's thread only (or while it is blocked in a rebalance callback waiting for this work).</remarks>
internal sealed class LaneQueues
{
    private readonly Dictionary<LaneId, Queue<BufferedRecord>> _lanes = [];  // every lane holding or handling a record
    private readonly LinkedList<LaneId> _ready = new();                      // lanes with a record and none in flight, oldest first
    private readonly Stack<Queue<BufferedRecord>> _spare = new();            // emptied queues, reused
    private long _count;
    private long _highWaterMark;

    /// <summary>Records waiting (not in flight).</summary>
    public int Count => (int)Interlocked.Read(ref _count);

    /// <summary>The deepest any one lane has been since the processor started: a hot key shows here.</summary>
    public long HighWaterMark => Interlocked.Read(ref _highWaterMark);

    public void Add(BufferedRecord record)
    {
        if (!_lanes.TryGetValue(record.Lane, out var queue))
        {
            queue = _spare.Count > 0 ? _spare.Pop() : new Queue<BufferedRecord>();
            _lanes.Add(record.Lane, queue);
            _ready.AddLast(record.Lane);
        }

        queue.Enqueue(record);
        Interlocked.Increment(ref _count);
        if (queue.Count > HighWaterMark)
        {
            Interlocked.Exchange(ref _highWaterMark, queue.Count);
        }
    }

    /// <summary>Whether the lane has no record waiting or in flight.</summary>
    public bool IsIdle(LaneId lane) => _lanes.Count == 0 || !_lanes.ContainsKey(lane);

    /// <summary>An idle lane's record was dispatched without waiting here and is in flight: the lane is busy until <see cref="Release"/>.</summary>
    public void Hold(LaneId lane) => _lanes.Add(lane, _spare.Count > 0 ? _spare.Pop() : new Queue<BufferedRecord>());

    /// <summary>
    /// Takes the head of the oldest ready lane (with <paramref name="wanted"/>, of the oldest ready lane whose head it
    /// wants: a lane whose head it does not want waits whole, since a lane keeps its order).
    /// </summary>
    public bool TryTake(Func<BufferedRecord, bool>? wanted, out BufferedRecord record) =>
        TakeFirst(wanted is null ? null : queue => wanted(queue.Peek()), out record);

    /// <summary>
    /// Takes the head of the oldest ready lane holding a record <paramref name="wanted"/> wants: the head goes first
    /// all the same, since a lane keeps its order (the barrier fills a hole so).
    /// </summary>
    public bool TryTakeToward(Func<BufferedRecord, bool> wanted, out BufferedRecord record) =>
        TakeFirst(queue => queue.Any(wanted), out record);

    private bool TakeFirst(Func<Queue<BufferedRecord>, bool>? wanted, out BufferedRecord record)
    {
        for (var node = _ready.First; node is not null; node = node.Next)
        {
            var queue = _lanes[node.Value];
            if (wanted is null || wanted(queue))
            {
                record = queue.Dequeue();
                _ready.Remove(node);
                Interlocked.Decrement(ref _count);
                return true;
            }
        }

        record = default;
        return false;
    }

    /// <summary>The records waiting, lane by lane, each lane in order.</summary>
    public IEnumerable<IEnumerable<BufferedRecord>> AllWaiting => _lanes.Values;

    /// <summary>The records waiting in <paramref name="lane"/>, in order.</summary>
    public IEnumerable<BufferedRecord> Waiting(LaneId lane) => _lanes.TryGetValue(lane, out var queue) ? queue : [];

    /// <summary>The lane's record in flight is done: the lane is ready again if it holds more, else forgotten.</summary>
    public void Release(LaneId lane)
    {
        if (!_lanes.TryGetValue(lane, out var queue))
        {
            return; // dropped (a rewind cleared the buffer while the record was in flight)
        }

        if (queue.Count > 0)
        {
            _ready.AddLast(lane);
        }
        else
        {
            _lanes.Remove(lane);
            _spare.Push(queue);
        }
    }

    /// <summary>Drops every waiting record (a rewind reads them again); lanes in flight stay busy until released.</summary>
    public void Clear(IEnumerable<LaneId> inFlight)
    {
        var busy = inFlight.ToHashSet();
        foreach (var (lane, queue) in _lanes.ToList())
        {
            queue.Clear();
            if (!busy.Contains(lane))
            {
                _lanes.Remove(lane);
                _spare.Push(queue);
            }
        }

        _ready.Clear();
        Interlocked.Exchange(ref _count, 0);
    }
}
