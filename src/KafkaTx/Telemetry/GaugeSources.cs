using System.Diagnostics.Metrics;

namespace KafkaTx.Telemetry;

/// <summary>
/// The sources of one observable gauge that several processors feed: each adds its own for as long as it runs, and
/// the gauge reports them all, each measurement with its processor's tags.
/// </summary>
internal sealed class GaugeSources
{
    private readonly Lock _lock = new();
    private readonly List<Func<Measurement<long>>> _sources = [];

    /// <summary>Adds a source until the returned registration is disposed.</summary>
    public IDisposable Add(Func<Measurement<long>> source)
    {
        lock (_lock)
        {
            _sources.Add(source);
        }

        return new Registration(this, source);
    }

    /// <summary>The gauge's callback: every source's measurement.</summary>
    public IEnumerable<Measurement<long>> Observe()
    {
        lock (_lock)
        {
            return [.. _sources.Select(source => source())];
        }
    }

    private sealed class Registration(GaugeSources owner, Func<Measurement<long>> source) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._lock)
            {
                owner._sources.Remove(source);
            }
        }
    }
}
