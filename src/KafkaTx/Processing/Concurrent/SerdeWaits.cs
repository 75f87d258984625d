namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// A handler slot's waits for asynchronous serdes (a deserializer before the handler runs, a serializer in its
/// ProduceAsync): while one is pending, the call is waiting for the schema registry, which may be down or slow, so its
/// running long is the registry's doing, not the record's, and is not charged as an overrun.
/// </summary>
internal sealed class SerdeWaits
{
    private int _pending;

    /// <summary>The serdes of the slot's call being awaited.</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>Whether a serde of the slot's call is being awaited.</summary>
    public bool Any => Pending > 0;

    /// <summary>
    /// The call has returned: a ProduceAsync of it still serializing was not awaited, and if it failed later its record
    /// would go missing unseen, so returning before it is the call's failure (the batch aborts; the record is charged).
    /// </summary>
    /// <exception cref="InvalidOperationException">A serde of the call is still pending.</exception>
    public void ThrowIfPendingAtReturn(RecordKey record)
    {
        if (Pending is > 0 and var running)
        {
            throw ProcessorUnitOfWork.UnawaitedWrites($"of {record}", running);
        }
    }

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
