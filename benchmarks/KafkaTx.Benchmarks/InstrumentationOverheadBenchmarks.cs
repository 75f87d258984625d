using System.Diagnostics;
using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Benchmarks;

/// <summary>
/// What KafkaTx's traces and metrics cost, with the network taken away: the produce call inside an open transaction,
/// and a whole transaction of one record, with nothing listening and with an ActivityListener and a MeterListener
/// that record everything (as an OpenTelemetry SDK with AlwaysOn sampling would).
/// </summary>
/// <remarks>
/// Target: with nothing listening, the produce call allocates exactly what it allocates without instrumentation
/// (the 96 B of the key's and value's UTF-8 bytes, see <see cref="ProduceOverheadBenchmarks"/>) and takes no
/// measurable extra time. With listeners, a record carries the trace context: a copy of its headers plus the
/// traceparent bytes.
/// </remarks>
[MemoryDiagnoser]
public class InstrumentationOverheadBenchmarks
{
    private readonly Message<string, string> _message = new() { Key = "order-42", Value = """{"orderId":"order-42","amount":99.5}""" };
    private ServiceProvider _services = null!;
    private ServiceProvider _transactionServices = null!;
    private ITransactionalUnitOfWork _unit = null!;
    private ITransactionalUnitOfWork _transactions = null!;
    private ActivityListener? _activityListener;
    private MeterListener? _meterListener;

    /// <summary>Whether an ActivityListener and a MeterListener listen to KafkaTx.</summary>
    [Params(false, true)]
    public bool Listening { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (Listening)
        {
            _activityListener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == "KafkaTx",
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            };
            ActivitySource.AddActivityListener(_activityListener);
            _meterListener = new MeterListener
            {
                InstrumentPublished = (instrument, listener) =>
                {
                    if (instrument.Meter.Name == "KafkaTx")
                    {
                        listener.EnableMeasurementEvents(instrument);
                    }
                },
            };
            _meterListener.SetMeasurementEventCallback<long>(static (_, _, _, _) => { });
            _meterListener.SetMeasurementEventCallback<double>(static (_, _, _, _) => { });
            _meterListener.Start();
        }

        _services = NoOpClientFactory.Services("bench-instrumentation");
        _unit = _services.GetRequiredService<ITransactionalUnitOfWork>();
        _unit.InitializeAsync().GetAwaiter().GetResult();
        _unit.BeginTransaction(); // open for every Produce of the run
        _transactionServices = NoOpClientFactory.Services("bench-instrumentation-transactions");
        _transactions = _transactionServices.GetRequiredService<ITransactionalUnitOfWork>();
        _transactions.InitializeAsync().GetAwaiter().GetResult();
    }

    /// <summary>The hot path: one record into the open transaction.</summary>
    [Benchmark]
    public void Produce() => _unit.Produce("bench-orders", _message);

    /// <summary>Begin, one record, commit: the per-transaction spans, events and measurements.</summary>
    [Benchmark]
    public Task TransactionOfOneRecord() => _transactions.ExecuteAsync(WriteOne);

    private ValueTask WriteOne(ITransactionScope scope, CancellationToken cancellationToken)
    {
        scope.Produce("bench-orders", _message);
        return ValueTask.CompletedTask;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _services.Dispose();
        _transactionServices.Dispose();
        _activityListener?.Dispose();
        _meterListener?.Dispose();
    }
}
