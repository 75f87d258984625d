using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Throughput.Backends;
using KafkaTx.Throughput.Reporting;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Throughput.Modes;

/// <summary>
/// Concurrent callers, each running ExecuteAsync in a loop, over a pool of units of work of each size: how
/// throughput grows with transactions in flight. Sizes alternate within each round.
/// </summary>
internal static class PoolRun
{
    public static async Task<int> RunAsync(ThroughputBackend backend, ThroughputSettings settings, string environment, CancellationToken cancellationToken)
    {
        var perTransaction = settings.RecordsPerTransaction.FirstOrDefault(10);
        var workload = new Workload(perTransaction, null, settings.RecordSizes[0], settings.RecordsPerRun, settings.Deadline, settings.Partitions, settings.LingerMs);
        var results = settings.PoolSizes.ToDictionary(size => size, _ => new List<double>());
        for (var round = 1; round <= settings.Rounds && !cancellationToken.IsCancellationRequested; round++)
        {
            var sizes = settings.PoolSizes.Skip((round - 1) % settings.PoolSizes.Length).Concat(settings.PoolSizes.Take((round - 1) % settings.PoolSizes.Length));
            foreach (var size in sizes)
            {
                Console.Write($"[pool, {settings.Callers} callers, {perTransaction} per transaction, round {round}/{settings.Rounds}] pool size {size}: ");
                var result = await RunOnceAsync(backend, workload, size, settings.Callers, settings.DeliveryTracking, cancellationToken);
                results[size].Add(result.RecordsPerSecond);
                Console.WriteLine($"{result.RecordsPerSecond:N0} records/s ({result.Records:N0} records in {result.Elapsed.TotalSeconds:F2} s, ExecuteAsync p50 {result.CommitP50:F1} ms)");
            }
        }

        var baseline = WorkloadSummary.Median(results[settings.PoolSizes[0]]);
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"{settings.Callers} concurrent callers, {perTransaction} records of {WorkloadSummary.Size(workload.RecordSize)} per transaction, {backend.Description}:");
        table.AppendLine("| pool size | records/s (median) | spread | vs pool size " + settings.PoolSizes[0] + " |");
        table.AppendLine("| ---: | ---: | ---: | ---: |");
        foreach (var (size, values) in results)
        {
            var median = WorkloadSummary.Median(values);
            table.AppendLine(CultureInfo.InvariantCulture, $"| {size} | {median:N0} | {values.Min():N0}-{values.Max():N0} | {median / baseline:F2} |");
        }

        Console.WriteLine();
        Console.WriteLine(table);
        if (settings.ReportPath is { } path)
        {
            await File.WriteAllTextAsync(path, $"Machine: {environment}  \n\n{table}", cancellationToken);
        }

        return 0;
    }

    private static async Task<RunResult> RunOnceAsync(ThroughputBackend backend, Workload workload, int size, int callers, DeliveryTracking deliveryTracking, CancellationToken cancellationToken)
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        var output = "throughput-pool-" + id;
        backend.CreateTopic(output, workload.Partitions);
        var services = new ServiceCollection();
        backend.Use(services.AddKafkaTransactions(ThroughputMode.KafkaTxOptions(backend, workload, "throughput-pool-" + id, deliveryTracking))).AddUnitOfWorkPool(size);
        await using var provider = services.BuildServiceProvider();
        var pool = provider.GetRequiredService<ITransactionalUnitOfWorkPool>();
        await pool.InitializeAsync(cancellationToken);
        var meter = new RunMeter();
        var latencies = new System.Collections.Concurrent.ConcurrentQueue<double>();
        long committed = 0;
        meter.Start();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(
            async () =>
            {
                var message = new Message<byte[]?, byte[]?> { Value = workload.Value };
                while (Interlocked.Read(ref committed) < workload.Records && meter.Elapsed < workload.Deadline && !cancellationToken.IsCancellationRequested)
                {
                    var started = System.Diagnostics.Stopwatch.GetTimestamp();
                    await pool.ExecuteAsync(
                        (scope, _) =>
                        {
                            for (var i = 0; i < workload.RecordsPerTransaction; i++)
                            {
                                message.Key = workload.Keys[i % workload.Keys.Length];
                                scope.Produce(output, message);
                            }

                            return ValueTask.CompletedTask;
                        },
                        cancellationToken);
                    latencies.Enqueue(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    Interlocked.Add(ref committed, workload.RecordsPerTransaction!.Value);
                }
            },
            cancellationToken)));
        var result = meter.Finish("pool-" + size, committed, workload.RecordSize, [.. latencies]);
        backend.DeleteTopicData(output, workload.Partitions);
        return result;
    }
}
