namespace KafkaTx.Clients;

/// <summary>
/// Whether the producer's InitTransactions is getting anywhere: since when it has been tried without succeeding, and
/// how the last attempt failed. A health check reads it; the producer writes it around each attempt.
/// </summary>
internal sealed class InitProgress(TimeProvider time)
{
    private const long Never = long.MinValue;

    private readonly Lock _lock = new();
    private long _pendingSince = Never;
    private DateTimeOffset _pendingSinceUtc;
    private Exception? _lastFailure;
    private DateTimeOffset _lastFailureUtc;

    public void Started()
    {
        lock (_lock)
        {
            if (_pendingSince == Never)
            {
                _pendingSince = time.GetTimestamp();
                _pendingSinceUtc = time.GetUtcNow();
            }
        }
    }

    public void Succeeded()
    {
        lock (_lock)
        {
            _pendingSince = Never;
            _lastFailure = null;
        }
    }

    /// <summary>An attempt failed; the next call tries again (a cancelled attempt is no failure, only not done yet).</summary>
    public void Failed(Exception failure)
    {
        lock (_lock)
        {
            _lastFailure = failure;
            _lastFailureUtc = time.GetUtcNow();
        }
    }

    public InitProgressStatus Status()
    {
        lock (_lock)
        {
            return _pendingSince == Never
                ? default
                : new InitProgressStatus(_pendingSinceUtc, time.GetElapsedTime(_pendingSince), _lastFailure, _lastFailure is null ? null : _lastFailureUtc);
        }
    }
}

/// <summary>The producer's initialization as a health check reports it.</summary>
/// <param name="PendingSince">When the producer first tried to initialize without succeeding since; null once initialized or before any attempt.</param>
/// <param name="PendingFor">How long that has lasted.</param>
/// <param name="LastFailure">How the last attempt failed, if it did.</param>
/// <param name="FailedAt">When it failed.</param>
internal readonly record struct InitProgressStatus(DateTimeOffset? PendingSince, TimeSpan PendingFor, Exception? LastFailure, DateTimeOffset? FailedAt);
