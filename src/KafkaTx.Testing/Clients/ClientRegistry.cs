namespace KafkaTx.Testing.Clients;

/// <summary>
/// The clients a cluster has handed out and not seen closed, which a simulated process crash kills, and how many
/// crashes there were. It takes the cluster's lock itself.
/// </summary>
internal sealed class ClientRegistry(object sync, TimeProvider time)
{
    private readonly HashSet<IInMemoryClient> _open = [];

    /// <summary>How many times the clients were crashed: a process that was running then is dead.</summary>
    public int CrashCount { get; private set; }

    /// <summary>How many clients are open now (for tests of what runs before the first client).</summary>
    public int OpenCount
    {
        get
        {
            lock (sync)
            {
                return _open.Count;
            }
        }
    }

    public T Open<T>(T client)
        where T : IInMemoryClient
    {
        lock (sync)
        {
            _open.Add(client);
        }

        return client;
    }

    /// <summary>
    /// A client made by a process that died in an earlier crash (its code still runs in the test, a real one's would
    /// not): it is dead from birth, so that a crashed application cannot come back as a zombie, for instance by
    /// replacing its producer and fencing the instance that took its place.
    /// </summary>
    public T OpenFor<T>(Func<T> create, int crashCountAtProcessStart)
        where T : IInMemoryClient
    {
        var client = Open(create());
        lock (sync)
        {
            if (CrashCount != crashCountAtProcessStart)
            {
                client.Crash(time.GetTimestamp());
                _open.Remove(client);
            }
        }

        return client;
    }

    public void Closed(IInMemoryClient client)
    {
        lock (sync)
        {
            _open.Remove(client);
        }
    }

    /// <summary>Every open client dies, each at the time it is told; none is open afterwards, and waiting consumers wake up to fail.</summary>
    public void CrashAll()
    {
        lock (sync)
        {
            foreach (var client in _open)
            {
                client.Crash(time.GetTimestamp());
            }

            _open.Clear();
            CrashCount++;
            Monitor.PulseAll(sync);
        }
    }
}
