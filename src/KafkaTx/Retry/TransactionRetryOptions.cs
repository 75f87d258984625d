namespace KafkaTx;

/// <summary>
/// How work is run again after an abortable failure: the transaction is aborted, the policy waits, and the work
/// runs again from the start in a new transaction. Fenced, fatal, rejected and unknown-outcome failures are never retried.
/// </summary>
public sealed class TransactionRetryOptions
{
    /// <summary>How many times the work may run in all, the first run included. 1 disables retries. Default 3.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>The wait before the second run; it doubles for each further run. Default 100 ms.</summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest wait between runs. Default 5 seconds; at most 1 day (refused at start-up above it).</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Whether each wait is drawn at random between zero and the exponential delay ("full jitter"), so that
    /// instances that failed together do not retry together. Default <see langword="true"/>.
    /// </summary>
    public bool UseJitter { get; set; } = true;
}
