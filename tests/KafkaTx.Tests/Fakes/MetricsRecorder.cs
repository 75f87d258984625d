using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using KafkaTx.Telemetry;

namespace KafkaTx.Tests.Fakes;

/// <summary>Records the measurements of one KafkaTxInstrumentation instance only, so that tests running in parallel do not see each other's.</summary>
internal sealed class MetricsRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)> _measurements = new();

    public MetricsRecorder(KafkaTxInstrumentation instrumentation)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, instrumentation.Meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>The values recorded on an instrument, in order, optionally only those with a tag of this value.</summary>
    public List<double> Values(string instrument, string? tag = null, object? tagValue = null) =>
        [.. _measurements.Where(m => m.Instrument == instrument && (tag is null || Equals(m.Tags.GetValueOrDefault(tag), tagValue))).Select(m => m.Value)];

    public double Sum(string instrument, string? tag = null, object? tagValue = null) => Values(instrument, tag, tagValue).Sum();

    /// <summary>Reads the observable instruments now and returns what one of them reported.</summary>
    public List<(double Value, Dictionary<string, object?> Tags)> Observe(string instrument)
    {
        var before = _measurements.Count;
        _listener.RecordObservableInstruments();
        return [.. _measurements.Skip(before).Where(m => m.Instrument == instrument).Select(m => (m.Value, m.Tags))];
    }

    /// <summary>The tags of the last measurement on an instrument.</summary>
    public Dictionary<string, object?> LastTags(string instrument) => _measurements.Last(m => m.Instrument == instrument).Tags;

    public void Dispose() => _listener.Dispose();

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var copy = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            copy[tag.Key] = tag.Value;
        }

        _measurements.Enqueue((instrument.Name, value, copy));
    }
}
