using Confluent.Kafka;
using KafkaTx.Throughput.Backends;
using KafkaTx.Throughput.Reporting;

namespace KafkaTx.Throughput.Modes;

/// <summary>(e) The ceiling: an idempotent producer without transactions, flushed at the end.</summary>
internal sealed class IdempotentProducer : ThroughputMode
{
    public override string Letter => "e";

    public override string Name => "idempotent producer (no transactions)";

    public override Task<RunResult> RunAsync(ThroughputBackend backend, Workload workload, RunNames names, CancellationToken cancellationToken)
    {
        using var producer = backend.CreateProducer(RawProducerConfig(backend, workload));
        var message = new Message<byte[]?, byte[]?> { Value = workload.Value };
        var meter = new RunMeter();
        meter.Start();
        long produced = 0;
        while (produced < workload.Records && meter.Elapsed < workload.Deadline && !cancellationToken.IsCancellationRequested)
        {
            Produce(producer, names.Output, workload, message, produced);
            produced++;
        }

        producer.Flush(TimeSpan.FromSeconds(60));
        return Task.FromResult(meter.Finish(Letter, produced, workload.RecordSize));
    }
}
