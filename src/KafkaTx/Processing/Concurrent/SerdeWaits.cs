namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// A handler slot's waits for asynchronous deserializers (before the handler runs): while one is pending, the call is
/// waiting for the schema registry, which may be down or slow, so its
/// running long is the registry's doing, not the record's, and is not charged as an overrun.
/// </summary>
internal sealed class SerdeWaits
{
    private int _pending;

    /// <summary>Whether a deserializer of the slot's call is being awaited.</summary>
    public bool Any => Volatile.Read(ref _pending) > 0;

    /// <summary>Awaits a serde's result, counted as pending meanwhile.</summary>
    public async ValueTask<T> AwaitAsync<T>(ValueTask<T> serde)
    {
        Interlocked.Increment(ref _pending);
        try
        {
            return await serde.ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _pending);
        }
    }
}
