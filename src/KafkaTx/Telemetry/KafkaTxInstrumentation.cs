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

    /// <summary>The span of one Kafka transaction, begin to commit or abort.</summary>
    public const string TransactionSpan = "kafkatx.transaction";

    /// <summary>The span of one processor batch: its transaction, from the first record handled to the commit or abort.</summary>
    public const string BatchSpan = "kafkatx.batch";

    /// <summary>The span of one input record handled by the processor.</summary>
    public const string ProcessSpan = "kafkatx.process";

    public const string MessagingSystemTag = "messaging.system";

    public const string MessagingSystem = "kafka";

    // Bucket advice for exporters that honour it (OpenTelemetry does): their default buckets suit milliseconds, and
    // these histograms are in seconds and in records.
    private static readonly InstrumentAdvice<double> SecondsBuckets = new()
    {
        HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    };

    private static readonly InstrumentAdvice<long> RecordCountBuckets = new()
    {
        HistogramBucketBoundaries = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 100_000],
    };

    private readonly Meter _meter;
    private readonly Lock _lagSourcesLock = new();
    private readonly List<Func<IEnumerable<Measurement<long>>>> _lagSources = [];

    public KafkaTxInstrumentation(IMeterFactory? meterFactory = null)
    {
        _meter = meterFactory?.Create(Name) ?? new Meter(Name);
        ActivitySource = new ActivitySource(Name);
        Commits = _meter.CreateCounter<long>("kafkatx.transactions.committed", "{transaction}", "Transactions committed.");
        Aborts = _meter.CreateCounter<long>("kafkatx.transactions.aborted", "{transaction}", "Transactions aborted, by reason.");
        WorkRetries = _meter.CreateCounter<long>("kafkatx.transactions.retried", "{attempt}", "Runs of transactional work repeated after an abortable failure.");
        RecordsCommitted = _meter.CreateCounter<long>("kafkatx.records.committed", "{record}", "Records made visible by committed transactions.");
        CommitDuration = _meter.CreateHistogram("kafkatx.transaction.commit.duration", "s", "Time from commit request to committed.", tags: null, SecondsBuckets);
        Failures = _meter.CreateCounter<long>("kafkatx.transactions.failed", "{failure}", "Transactional failures, by kind.");
        ProducerReplacements = _meter.CreateCounter<long>("kafkatx.producer.replacements", "{replacement}", "Producers replaced after a fatal error that was not fencing, by the operation that hit it.");
        TransactionDuration = _meter.CreateHistogram("kafkatx.transaction.duration", "s", "Time from begin to the end of a transaction, by outcome (committed or aborted).", tags: null, SecondsBuckets);
        RecordsPerTransaction = _meter.CreateHistogram("kafkatx.transaction.records", "{record}", "Records written by each committed transaction.", tags: null, RecordCountBuckets);
        Fenced = _meter.CreateCounter<long>("kafkatx.producer.fenced", "{event}", "Producers fenced by a newer instance with the same transactional.id.");
        Faulted = _meter.CreateCounter<long>("kafkatx.producer.faulted", "{event}", "Producers faulted by a fatal error that self-healing could not recover.");
        ProcessorBatchesCommitted = _meter.CreateCounter<long>("kafkatx.processor.batches.committed", "{batch}", "Processor transactions committed.");
        ProcessorRecordsHandled = _meter.CreateCounter<long>("kafkatx.processor.records.handled", "{record}", "Input records handed to the handler, retries included.");
        ProcessorRecordsDeadLettered = _meter.CreateCounter<long>("kafkatx.processor.records.dead_lettered", "{record}", "Poison records written to the dead-letter topic.");
        ProcessorRecordsSkipped = _meter.CreateCounter<long>("kafkatx.processor.records.skipped", "{record}", "Poison records committed past without output (Skip policy).");
        ProcessorRewinds = _meter.CreateCounter<long>("kafkatx.processor.rewinds", "{rewind}", "Rewinds of the consumer to the committed positions after an abort.");
        _meter.CreateObservableGauge("kafkatx.processor.consumer.lag", ObserveConsumerLag, "{record}", "Records between a processor's position and the partition's high watermark, per assigned partition.");
        _meter.CreateObservableGauge("kafkatx.processor.records.in_flight", ProcessorInFlight.Observe, "{record}", "Handler calls running at once (MaxConcurrency above 1).");
        _meter.CreateObservableGauge("kafkatx.processor.records.buffered", ProcessorBuffered.Observe, "{record}", "Records consumed and waiting for a handler (MaxConcurrency above 1).");
        _meter.CreateObservableGauge("kafkatx.processor.lane.depth.high_water", ProcessorLaneHighWater.Observe, "{record}", "The most records one ordering lane (a key, a partition) has held waiting since the processor started (MaxConcurrency above 1).");
        ProcessorBarrierWait = _meter.CreateHistogram("kafkatx.processor.barrier.wait.duration", "s", "Per commit, time from the batch's barrier to its last handler call's end (MaxConcurrency above 1).", tags: null, SecondsBuckets);
    }

    /// <summary>
    /// Adds a processor's lag to the <c>kafkatx.processor.consumer.lag</c> gauge until the returned registration is
    /// disposed.
    /// </summary>
    public IDisposable AddLagSource(Func<IEnumerable<Measurement<long>>> source)
    {
        lock (_lagSourcesLock)
        {
            _lagSources.Add(source);
        }

        return new LagSourceRegistration(this, source);
    }

    private IEnumerable<Measurement<long>> ObserveConsumerLag()
    {
        Func<IEnumerable<Measurement<long>>>[] sources;
        lock (_lagSourcesLock)
        {
            sources = [.. _lagSources];
        }

        foreach (var source in sources)
        {
            foreach (var measurement in source())
            {
                yield return measurement;
            }
        }
    }

    private sealed class LagSourceRegistration(KafkaTxInstrumentation owner, Func<IEnumerable<Measurement<long>>> source) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._lagSourcesLock)
            {
                owner._lagSources.Remove(source);
            }
        }
    }

    /// <summary>The meter, for tests that listen to this instance only.</summary>
    internal Meter Meter => _meter;

    public Histogram<double> TransactionDuration { get; }

    public Histogram<long> RecordsPerTransaction { get; }

    public Counter<long> Fenced { get; }

    public Counter<long> Faulted { get; }

    public Counter<long> ProcessorBatchesCommitted { get; }

    public Counter<long> ProcessorRecordsHandled { get; }

    public Counter<long> ProcessorRecordsDeadLettered { get; }

    public Counter<long> ProcessorRecordsSkipped { get; }

    public Counter<long> ProcessorRewinds { get; }

    /// <summary>Concurrent processors' handler calls running.</summary>
    public GaugeSources ProcessorInFlight { get; } = new();

    /// <summary>Concurrent processors' buffered records.</summary>
    public GaugeSources ProcessorBuffered { get; } = new();

    /// <summary>Concurrent processors' deepest lane since start.</summary>
    public GaugeSources ProcessorLaneHighWater { get; } = new();

    /// <summary>Concurrent processors' wait at the commit barrier.</summary>
    public Histogram<double> ProcessorBarrierWait { get; }

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
