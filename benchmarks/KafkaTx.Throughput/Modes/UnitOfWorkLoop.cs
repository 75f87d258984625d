using Confluent.Kafka;
using KafkaTx.Throughput.Backends;
using KafkaTx.Throughput.Reporting;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Throughput.Modes;

/// <summary>(b) KafkaTx's unit of work: ExecuteAsync writing the same records per transaction as (a).</summary>
internal sealed class UnitOfWorkLoop(KafkaTxCommitLatencies latencies, DeliveryTracking deliveryTracking) : ThroughputMode
{
    public override string Letter => "b";

    public override string Name => "KafkaTx unit of work (ExecuteAsync)";

    public override async Task<RunResult> RunAsync(ThroughputBackend backend, Workload workload, RunNames names, CancellationToken cancellationToken)
    {
        var services = new ServiceCollection();
        backend.Use(services.AddKafkaTransactions(KafkaTxOptions(backend, workload, names.TransactionalId, deliveryTracking)));
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync(cancellationToken);
        var message = new Message<byte[]?, byte[]?> { Value = workload.Value };
        var commits = latencies.Restart();
        var meter = new RunMeter();
        meter.Start();
        long committed = 0;
        while (committed < workload.Records && meter.Elapsed < workload.Deadline && !cancellationToken.IsCancellationRequested)
        {
            committed += await unit.ExecuteAsync(
                (scope, _) =>
                {
                    var begun = System.Diagnostics.Stopwatch.GetTimestamp();
                    var inTransaction = 0;
                    do
                    {
                        message.Key = workload.Keys[(committed + inTransaction) % workload.Keys.Length];
                        scope.Produce(names.Output, message);
                        inTransaction++;
                    }
                    while (!workload.IsFull(inTransaction, begun) && committed + inTransaction < workload.Records);

                    return ValueTask.FromResult(inTransaction);
                },
                cancellationToken);
        }

        return meter.Finish(Letter, committed, workload.RecordSize, [.. commits]);
    }
}
