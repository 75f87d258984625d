using Confluent.Kafka;
using KafkaTx.Throughput.Backends;
using KafkaTx.Throughput.Reporting;

namespace KafkaTx.Throughput.Modes;

/// <summary>(a) Confluent.Kafka's transactional producer, as its examples use it: begin, produce, commit.</summary>
internal sealed class RawTransactionalLoop : ThroughputMode
{
    public override string Letter => "a";

    public override string Name => "raw transactional loop";

    public override Task<RunResult> RunAsync(ThroughputBackend backend, Workload workload, RunNames names, CancellationToken cancellationToken)
    {
        using var producer = backend.CreateProducer(RawProducerConfig(backend, workload, names.TransactionalId));
        producer.InitTransactions(TimeSpan.FromSeconds(30));
        var message = new Message<byte[]?, byte[]?> { Value = workload.Value };
        var meter = new RunMeter();
        meter.Start();
        long committed = 0;
        while (committed < workload.Records && meter.Elapsed < workload.Deadline && !cancellationToken.IsCancellationRequested)
        {
            producer.BeginTransaction();
            var begun = System.Diagnostics.Stopwatch.GetTimestamp();
            var inTransaction = 0;
            do
            {
                Produce(producer, names.Output, workload, message, committed + inTransaction);
                inTransaction++;
            }
            while (!workload.IsFull(inTransaction, begun) && committed + inTransaction < workload.Records);

            var commitStarted = System.Diagnostics.Stopwatch.GetTimestamp();
            producer.CommitTransaction(TimeSpan.FromSeconds(60));
            meter.Commit(commitStarted);
            committed += inTransaction;
        }

        return Task.FromResult(meter.Finish(Letter, committed, workload.RecordSize));
    }
}
