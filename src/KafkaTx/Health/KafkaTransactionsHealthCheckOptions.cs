namespace KafkaTx;

/// <summary>When a KafkaTx health check reports Degraded. Unhealthy is not configurable: a Fenced or Faulted unit or processor.</summary>
public sealed class KafkaTransactionsHealthCheckOptions
{
    /// <summary>Degraded once this many commits in a row have failed (aborted, rejected, unknown). Default 3.</summary>
    public int DegradedAfterFailedCommits { get; set; } = 3;

    /// <summary>Degraded once self-healing has replaced the producer this many times in a row without a transaction completing. Default 2.</summary>
    public int DegradedAfterProducerReplacements { get; set; } = 2;

    /// <summary>
    /// Degraded when a processor has taken records that have waited this long for a commit (its handler hangs, or it
    /// fails and retries), or when records that arrived in its partitions have waited this long without its position
    /// moving (it is stuck before its handler, a rewind failing, say). Default 60 s.
    /// </summary>
    public TimeSpan DegradedAfterUncommittedFor { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Degraded when the producer's client has found every broker down and reached none for this long, or when its
    /// InitTransactions has been tried this long without succeeding (an attempt that failed is Degraded at once).
    /// Default 15 s: longer than one of librdkafka's reconnection rounds (reconnect.backoff.max.ms, 10 s), so that a
    /// broker restarting does not flip the status.
    /// </summary>
    public TimeSpan DegradedAfterBrokersUnreachableFor { get; set; } = TimeSpan.FromSeconds(15);
}
