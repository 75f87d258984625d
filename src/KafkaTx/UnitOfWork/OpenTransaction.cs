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

    public void Begin(CancellationToken cancellation)
    {
        Volatile.Write(ref _records, 0);
        _cancellation = cancellation;
        _trackedTopics = [];
        _startedAt = time.GetTimestamp();
        Interlocked.Increment(ref _number);
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
