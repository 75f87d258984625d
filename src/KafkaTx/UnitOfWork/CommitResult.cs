using System.Runtime.ExceptionServices;

namespace KafkaTx.UnitOfWork;

/// <summary>How a commit ended.</summary>
internal enum CommitOutcome
{
    /// <summary>Committed: the unit is Ready.</summary>
    Committed,

    /// <summary>Not committed, and aborted (or ended by a new producer's InitTransactions): nothing is visible.</summary>
    Aborted,

    /// <summary>Sent, and whether it took effect is unknown: the unit is Committing (the next call settles it), or the producer was replaced.</summary>
    Unknown,

    /// <summary>The unit is Fenced or Faulted.</summary>
    Terminal,
}

/// <summary>The answer of <see cref="CommitProtocol"/>: the outcome, and what the caller is told when it is not a commit.</summary>
/// <param name="Outcome">How the commit ended.</param>
/// <param name="Failure">The failure to report (kind, failed deliveries); null when committed, or when the caller's token stopped the wait.</param>
/// <param name="Cancelled">The explicit caller stopped waiting for a commit that was sent: the outcome is unknown.</param>
internal readonly record struct CommitResult(CommitOutcome Outcome, KafkaTransactionException? Failure = null, OperationCanceledException? Cancelled = null)
{
    public static CommitResult Committed => new(CommitOutcome.Committed);

    public bool IsCommitted => Outcome == CommitOutcome.Committed;

    /// <summary>The result as the public API reports it: nothing when committed, else the failure thrown.</summary>
    public void ThrowIfNotCommitted()
    {
        if (Cancelled is { } cancelled)
        {
            ExceptionDispatchInfo.Throw(cancelled);
        }

        if (Failure is { } failure)
        {
            throw failure;
        }
    }
}
