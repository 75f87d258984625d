namespace KafkaTx.Serialization;

/// <summary>
/// A serializer's or deserializer's call that is no longer awaited (its caller gave up: the transaction's time ran
/// out, or it was cancelled): it goes on alone, and its result is never used.
/// </summary>
internal static class AbandonedSerdeCall
{
    /// <summary>Observes the call's failure, if it fails, so that it is not reported as an unobserved task exception.</summary>
    public static void Observe(Task? call) =>
        call?.ContinueWith(static c => _ = c.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
}
