using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace KafkaTx.Throughput.Reporting;

/// <summary>
/// KafkaTx's own commit latencies, from its <c>kafkatx.transaction.commit.duration</c> histogram. Only that
/// instrument is enabled, so the listener costs one callback per transaction and nothing per record.
/// </summary>
internal sealed class KafkaTxCommitLatencies : IDisposable
{
    private readonly MeterListener _listener = new();
    private ConcurrentQueue<double> _latencies = new();

    public KafkaTxCommitLatencies()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "KafkaTx" && instrument.Name == "kafkatx.transaction.commit.duration")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<double>((_, seconds, _, _) => _latencies.Enqueue(seconds * 1000));
        _listener.Start();
    }

    /// <summary>Starts a new run's list and returns it.</summary>
    public ConcurrentQueue<double> Restart() => _latencies = new ConcurrentQueue<double>();

    public void Dispose() => _listener.Dispose();
}
