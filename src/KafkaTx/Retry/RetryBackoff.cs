namespace KafkaTx.Retry;

/// <summary>Computes the wait before a retry: exponential growth, capped, optionally with full jitter.</summary>
internal static class RetryBackoff
{
    /// <summary>The delay before run number <paramref name="nextAttempt"/> (2 for the first retry).</summary>
    /// <param name="options">The policy.</param>
    /// <param name="nextAttempt">The number of the run about to start; at least 2.</param>
    /// <param name="random">A number in [0, 1) used for jitter.</param>
    public static TimeSpan DelayBefore(TransactionRetryOptions options, int nextAttempt, double random)
    {
        var exponent = Math.Min(nextAttempt - 2, 30);
        var ceiling = Math.Min(options.BaseDelay.TotalMilliseconds * Math.Pow(2, exponent), options.MaxDelay.TotalMilliseconds);
        var milliseconds = options.UseJitter ? ceiling * random : ceiling;
        return TimeSpan.FromMilliseconds(milliseconds);
    }
}
