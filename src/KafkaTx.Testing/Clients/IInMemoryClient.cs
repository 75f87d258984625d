namespace KafkaTx.Testing.Clients;

/// <summary>A client of the in-memory cluster, which a simulated process crash stops dead.</summary>
internal interface IInMemoryClient
{
    /// <summary>The process died at <paramref name="timestamp"/>: fail every further call, and leave nothing behind on close.</summary>
    void Crash(long timestamp);
}
