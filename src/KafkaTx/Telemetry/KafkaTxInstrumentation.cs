using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace KafkaTx.Telemetry;

/// <summary>
/// The traces and metrics KafkaTx emits, through System.Diagnostics so that OpenTelemetry or dotnet-counters can
/// listen on the <c>KafkaTx</c> source and meter. One instance per service provider; nothing is static.
/// </summary>
internal sealed class KafkaTxInstrumentation : IDisposable
{
    /// <summary>The name of the ActivitySource and of the Meter.</summary>
    public const string Name = "KafkaTx";

    private readonly Meter _meter;

    public KafkaTxInstrumentation(IMeterFactory? meterFactory = null)
    {
        _meter = meterFactory?.Create(Name) ?? new Meter(Name);
        ActivitySource = new ActivitySource(Name);
        Commits = _meter.CreateCounter<long>("kafkatx.transactions.committed", "{transaction}", "Transactions committed.");
        Aborts = _meter.CreateCounter<long>("kafkatx.transactions.aborted", "{transaction}", "Transactions aborted, by reason.");
        WorkRetries = _meter.CreateCounter<long>("kafkatx.transactions.retried", "{attempt}", "Runs of transactional work repeated after an abortable failure.");
        RecordsCommitted = _meter.CreateCounter<long>("kafkatx.records.committed", "{record}", "Records made visible by committed transactions.");
        CommitDuration = _meter.CreateHistogram<double>("kafkatx.transaction.commit.duration", "s", "Time from commit request to committed.");
        Failures = _meter.CreateCounter<long>("kafkatx.transactions.failed", "{failure}", "Transactional failures, by kind.");
        ProducerReplacements = _meter.CreateCounter<long>("kafkatx.producer.replacements", "{replacement}", "Producers replaced after a fatal error that was not fencing, by the operation that hit it.");
    }

    public ActivitySource ActivitySource { get; }

    public Counter<long> Commits { get; }

    public Counter<long> Aborts { get; }

    public Counter<long> WorkRetries { get; }

    public Counter<long> RecordsCommitted { get; }

    public Histogram<double> CommitDuration { get; }

    public Counter<long> Failures { get; }

    public Counter<long> ProducerReplacements { get; }

    public void Dispose()
    {
        ActivitySource.Dispose();
        _meter.Dispose();
    }
}
