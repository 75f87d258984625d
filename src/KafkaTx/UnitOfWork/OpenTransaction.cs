namespace KafkaTx.UnitOfWork;

/// <summary>
/// What the unit knows of its current transaction: when it began, the records written, the topics whose first record
/// is tracked, its cancellation, and the attempt of ExecuteAsync it belongs to.
/// </summary>
internal sealed class OpenTransaction(KafkaTransactionsOptions options, TimeProvider time)
{
    private readonly Lock _trackedTopicsLock = new();
    private int _records;
    private string[] _trackedTopics = []; // FirstRecordPerTopic: the topics of this transaction whose first record is tracked
    private long _startedAt;
    private int _attempt = 1;
    private long _number; // which transaction of the unit this is: a ProduceAsync checks it is still the one it began in

    // ProduceAsync's writes (see TryStartWrite): whether the transaction still takes them, how many were begun and
    // not yet written or failed, and how many were refused late (their handler call had returned), all under the lock.
    private readonly Lock _writesLock = new();
    private bool _open;
    private int _writesInFlight;
    private int _writesRefused;

    // The token of the open transaction (ExecuteAsync's caller's, or the one given to BeginTransaction): a Produce
    // waiting for room in a full local queue stops when it is cancelled. Read only while the queue is full.
    private CancellationToken _cancellation;

    public int Records => Volatile.Read(ref _records);

    public CancellationToken Cancellation => _cancellation;

    /// <summary>Counts the transactions begun: a write that awaited (ProduceAsync) checks that its transaction is still the open one.</summary>
    public long Number => Volatile.Read(ref _number);

    /// <summary>The attempt of ExecuteAsync this transaction is (1 outside ExecuteAsync).</summary>
    public int Attempt => _attempt;

    /// <summary>How long the transaction has been open.</summary>
    public TimeSpan Age => time.GetElapsedTime(_startedAt);

    public bool IsExpired(out TimeSpan age)
    {
        age = Age;
        return age >= options.TransactionTimeout;
    }

    /// <summary>
    /// The last part of TransactionTimeout, kept for the commit: a tenth of it, at most 5 s. A commit sent later could
    /// reach the coordinator after it aborted the transaction for its age, and the epoch it bumped then would fence
    /// the producer; a healthy commit takes milliseconds.
    /// </summary>
    public static TimeSpan CommitMargin(TimeSpan transactionTimeout) => TimeSpan.FromTicks(Math.Min(transactionTimeout.Ticks / 10, TimeSpan.TicksPerSecond * 5));

    /// <summary>Whether the transaction is too old to send its commit: it is within <see cref="CommitMargin(TimeSpan)"/> of TransactionTimeout.</summary>
    public bool IsTooLateToCommit(out TimeSpan age)
    {
        age = Age;
        return age >= options.TransactionTimeout - CommitMargin(options.TransactionTimeout);
    }

    /// <summary>The time left for ProduceAsync's serializers: until the commit margin begins (zero when it has).</summary>
    public TimeSpan TimeLeftToSerialize() => TimeLeftBeforeCommitMargin(options.TransactionTimeout, Age);

    /// <summary>
    /// What a transaction of <paramref name="age"/> has left before its <see cref="CommitMargin(TimeSpan)"/> begins
    /// (zero when it has): as long as a serde of the transaction is waited for.
    /// </summary>
    public static TimeSpan TimeLeftBeforeCommitMargin(TimeSpan transactionTimeout, TimeSpan age)
    {
        var left = transactionTimeout - CommitMargin(transactionTimeout) - age;
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <summary>ProduceAsync calls begun in the open transaction and not yet written or failed.</summary>
    public int WritesInFlight
    {
        get
        {
            lock (_writesLock)
            {
                return _writesInFlight;
            }
        }
    }

    public void Begin(CancellationToken cancellation)
    {
        Volatile.Write(ref _records, 0);
        _cancellation = cancellation;
        _trackedTopics = [];
        _startedAt = time.GetTimestamp();
        lock (_writesLock)
        {
            _number++;
            _open = true;
            _writesInFlight = 0;
            _writesRefused = 0;
        }
    }

    /// <summary>
    /// Counts a ProduceAsync begun in the open transaction, until <see cref="EndWrite"/> or <see cref="RefuseWrite"/>:
    /// a transaction with one in flight does not commit. False when the transaction takes no more writes, or is not
    /// <paramref name="onlyIn"/> (a handler call's write late enough to meet the next transaction: never counted in it).
    /// </summary>
    public bool TryStartWrite(long? onlyIn, out long transaction)
    {
        lock (_writesLock)
        {
            transaction = _number;
            if (!_open || (onlyIn is { } expected && expected != _number))
            {
                return false;
            }

            _writesInFlight++;
            return true;
        }
    }

    /// <summary>
    /// Writes a record ProduceAsync serialized, atomically with the end of its transaction: under the lock that the
    /// commit and the abort take to stop the writes, and only if <paramref name="transaction"/> is still open. The
    /// write is counted as ended either way. False (nothing written) when the transaction no longer takes it.
    /// </summary>
    public bool TryWrite<TState>(long transaction, Action<TState> write, TState state)
    {
        lock (_writesLock)
        {
            var takes = _open && _number == transaction;
            try
            {
                if (takes)
                {
                    write(state);
                }
            }
            finally
            {
                EndWriteLocked(transaction);
            }

            return takes;
        }
    }

    /// <summary>A ProduceAsync whose serialization failed, or was given up: nothing was written.</summary>
    public void EndWrite(long transaction)
    {
        lock (_writesLock)
        {
            EndWriteLocked(transaction);
        }
    }

    /// <summary>
    /// A ProduceAsync of the transaction was refused because it came too late (its handler call had returned): the
    /// record it was meant to write is missing, so the transaction may not commit. <paramref name="started"/>: it was
    /// counted in flight (<see cref="TryStartWrite"/>).
    /// </summary>
    public void RefuseWrite(long transaction, bool started)
    {
        lock (_writesLock)
        {
            if (_number == transaction)
            {
                _writesRefused++;
                if (started)
                {
                    EndWriteLocked(transaction);
                }
            }
        }
    }

    /// <summary>
    /// Stops the writes of ProduceAsync, for the commit: refused (the transaction stays open and must be aborted) when
    /// one is in flight or was refused late, which <paramref name="inFlight"/> and <paramref name="refused"/> count.
    /// </summary>
    public bool TryStopWritesForCommit(out int inFlight, out int refused)
    {
        lock (_writesLock)
        {
            inFlight = _writesInFlight;
            refused = _writesRefused;
            if (inFlight > 0 || refused > 0)
            {
                return false;
            }

            _open = false;
            return true;
        }
    }

    /// <summary>The commit was cancelled before it was sent: the transaction takes writes again.</summary>
    public void ResumeWrites(long transaction)
    {
        lock (_writesLock)
        {
            _open = _number == transaction;
        }
    }

    /// <summary>The transaction ends (aborted, reset, terminated): no ProduceAsync writes into it any more.</summary>
    public void StopWrites()
    {
        lock (_writesLock)
        {
            _open = false;
        }
    }

    private void EndWriteLocked(long transaction)
    {
        if (_number == transaction && _writesInFlight > 0)
        {
            _writesInFlight--;
        }
    }

    public void Produced() => Interlocked.Increment(ref _records);

    /// <summary>The transaction's owner is gone: a Produce no longer observes its token.</summary>
    public void ForgetCancellation() => _cancellation = default;

    public void StartAttempt(int attempt) => _attempt = attempt;

    public void EndAttempts() => _attempt = 1;

    /// <summary>Whether this record's delivery is tracked: every one, none, or the first to each topic in the transaction.</summary>
    public bool TracksDeliveryOf(string topic)
    {
        switch (options.DeliveryTracking)
        {
            case DeliveryTracking.EveryRecord:
                return true;
            case DeliveryTracking.None:
                return false;
        }

        if (Holds(Volatile.Read(ref _trackedTopics), topic))
        {
            return false;
        }

        lock (_trackedTopicsLock)
        {
            // Records may be produced from several threads within one transaction: the first to a topic wins.
            if (Holds(_trackedTopics, topic))
            {
                return false;
            }

            Volatile.Write(ref _trackedTopics, [.. _trackedTopics, topic]);
            return true;
        }

        static bool Holds(string[] topics, string topic)
        {
            foreach (var seen in topics)
            {
                if (string.Equals(seen, topic, StringComparison.Ordinal))
                {
                    return true;
                }
            }

            return false;
        }
    }
}
