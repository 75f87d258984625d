namespace KafkaTx;

/// <summary>
/// How <c>InitializeOnStart</c> initializes a producer when the host starts: how long the start waits for it, and
/// whether a producer that could not initialize in that time stops the start.
/// </summary>
public sealed class KafkaTransactionsInitializeOnStartOptions
{
    /// <summary>
    /// How long the host's start waits for the producer's InitTransactions; positive, at most 10 minutes. Default 10 s
    /// (it takes tens of milliseconds with the brokers up). When it runs out, the start goes on (see
    /// <see cref="FailStartIfNotInitialized"/>) and the first call initializes the producer, as without
    /// <c>InitializeOnStart</c>.
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// When true, a producer that could not initialize within <see cref="Timeout"/> fails the host's start (its
    /// StartAsync throws), for applications that are of no use without Kafka and would rather be restarted. Default
    /// false: the application starts, logs why the producer is not initialized, its health check reports Degraded, and
    /// calls retry the initialization, so endpoints that do not need Kafka keep working while it is away.
    /// </summary>
    public bool FailStartIfNotInitialized { get; set; }
}
