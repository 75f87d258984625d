using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Throughput.Backends;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Throughput.Modes;

/// <summary>
/// Issue 17's batch-handler target: a handler that makes one call to a slow service (Task.Delay of <c>--call-ms</c>,
/// 5 ms, with its token) per batch of MaxBatchSize (500) records, against the record handler making that call per
/// record; both copy every record, exactly once. Each case is timed from its first handler call to its last record
/// committed, then the output is read with read_committed and checked (every record once). Prints both rates and their
/// ratio (the target: at least 20).
/// </summary>
internal static class BatchRun
{
    public static async Task<int> RunAsync(ThroughputBackend backend, ThroughputSettings settings, string environment, CancellationToken cancellationToken)
    {
        var batchSize = settings.MaxBatchSize ?? 500;
        var call = TimeSpan.FromMilliseconds(settings.CallMs);
        var batchRecords = settings.Records ?? 50_000;
        var recordRecords = Math.Max(batchSize, batchRecords / 50); // one call per record: 50 times fewer records, a few seconds
        BatchCase[] cases =
        [
            new($"record handler, one {settings.CallMs} ms call per record", recordRecords, Batch: false, batchSize, call),
            new($"batch handler, one {settings.CallMs} ms call per batch of {batchSize}", batchRecords, Batch: true, batchSize, call),
        ];

        var rates = cases.Select(_ => new List<double>()).ToArray();
        var verdicts = cases.Select(_ => new List<string>()).ToArray();
        for (var round = 1; round <= settings.Rounds && !cancellationToken.IsCancellationRequested; round++)
        {
            for (var j = 0; j < cases.Length; j++)
            {
                var i = (j + round - 1) % cases.Length; // alternate which case goes first
                Console.Write($"[batch, round {round}/{settings.Rounds}] {cases[i].Name}: ");
                var (elapsed, verdict) = await RunOnceAsync(backend, settings, cases[i], cancellationToken);
                rates[i].Add(cases[i].Records / elapsed.TotalSeconds);
                verdicts[i].Add(verdict);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{cases[i].Records:N0} records in {elapsed.TotalSeconds:F2} s, {cases[i].Records / elapsed.TotalSeconds:N0} records/s; {verdict}"));
            }
        }

        var medians = rates.Select(r => r.Count == 0 ? double.NaN : Reporting.WorkloadSummary.Median(r)).ToArray();
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Batch handler, {backend.Description}; {environment}; rounds {settings.Rounds}; median records/s from the first handler call to the last record committed; MaxBatchSize {batchSize}, MaxBatchDuration 100 ms.");
        table.AppendLine();
        table.AppendLine("| case | records | records/s (median) | spread | output (read_committed) |");
        table.AppendLine("| --- | ---: | ---: | ---: | --- |");
        for (var i = 0; i < cases.Length; i++)
        {
            var spread = rates[i].Count == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{rates[i].Min():N0}-{rates[i].Max():N0}");
            table.AppendLine(CultureInfo.InvariantCulture, $"| {cases[i].Name} | {cases[i].Records:N0} | {medians[i]:N0} | {spread} | {string.Join("; ", verdicts[i].Distinct())} |");
        }

        table.AppendLine();
        table.AppendLine(CultureInfo.InvariantCulture, $"Batch handler / record handler, records per second: {medians[1] / medians[0]:F1}x (target: at least 20x)");
        Console.WriteLine();
        Console.WriteLine(table);
        if (settings.ReportPath is { } path)
        {
            await File.WriteAllTextAsync(path, table.ToString(), cancellationToken);
            Console.WriteLine($"Report written to {path}");
        }

        return 0;
    }

    private static async Task<(TimeSpan Elapsed, string Verdict)> RunOnceAsync(ThroughputBackend backend, ThroughputSettings settings, BatchCase workload, CancellationToken cancellationToken)
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        var (input, output) = ("batch-in-" + id, "batch-out-" + id);
        backend.CreateTopic(input, 1);
        backend.CreateTopic(output, 1);
        Seed(backend, workload.Records, input);

        var progress = new BatchProgress(output, workload.Call);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(progress);
        var batching = new Workload(null, TimeSpan.FromMilliseconds(100), 8, workload.Records, settings.Deadline, 1, settings.LingerMs);
        var kafka = backend.Use(builder.Services.AddKafkaTransactions(ThroughputMode.KafkaTxOptions(backend, batching, "batch-tx-" + id, settings.DeliveryTracking)));
        void Configure(TransactionalProcessorOptions o)
        {
            o.Topics.Add(input);
            o.GroupId = "batch-group-" + id;
            o.MaxBatchSize = workload.BatchSize;
            o.StopApplicationOnFailure = false;
        }

        if (workload.Batch)
        {
            kafka.AddTransactionalProcessor<SlowBatchHandler>(Configure);
        }
        else
        {
            kafka.AddTransactionalProcessor<SlowRecordHandler>(Configure);
        }

        using var host = builder.Build();
        var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        await host.StartAsync(cancellationToken);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        while (processor.CommittedRecords < workload.Records && processor.State is not (ProcessorState.Stopped or ProcessorState.Fenced or ProcessorState.Faulted)
            && !cancellationToken.IsCancellationRequested && DateTime.UtcNow < deadline)
        {
            await Task.Delay(1, cancellationToken);
        }

        var elapsed = progress.Meter.Elapsed;
        await host.StopAsync(CancellationToken.None);
        if (processor.CommittedRecords < workload.Records)
        {
            throw new InvalidOperationException($"{workload.Name}: {processor.CommittedRecords:N0} of {workload.Records:N0} records committed in 5 minutes; the processor is {processor.State}.", processor.Failure);
        }

        var verdict = Verify(backend, workload.Records, output);
        backend.DeleteTopicData(input, 1);
        backend.DeleteTopicData(output, 1);
        return (elapsed, verdict);
    }

    /// <summary>Record i has value i (8 bytes, big-endian).</summary>
    private static void Seed(ThroughputBackend backend, int records, string topic)
    {
        using var producer = backend.CreateProducer(new ProducerConfig { BootstrapServers = backend.BootstrapServers, EnableIdempotence = true, LingerMs = 5 });
        for (var i = 0; i < records; i++)
        {
            var value = new byte[8];
            BinaryPrimitives.WriteInt64BigEndian(value, i);
            producer.ProduceWaitingForRoom(new TopicPartition(topic, 0), new Message<byte[]?, byte[]?> { Key = value, Value = value }, TimeSpan.FromMilliseconds(10));
        }

        if (producer.Flush(TimeSpan.FromMinutes(2)) > 0)
        {
            throw new TimeoutException($"The input ({records:N0} records) was not all written within 2 minutes.");
        }
    }

    /// <summary>Reads the output with read_committed: every input record exactly once.</summary>
    private static string Verify(ThroughputBackend backend, int records, string topic)
    {
        using var reader = backend.CreateConsumer(new ConsumerConfig
        {
            BootstrapServers = backend.BootstrapServers,
            GroupId = "batch-verifier-" + Guid.NewGuid().ToString("N"),
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        });
        reader.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        var seen = new bool[records];
        long count = 0, duplicates = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            var result = reader.Consume(TimeSpan.FromMilliseconds(500));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                break;
            }

            count++;
            var i = BinaryPrimitives.ReadInt64BigEndian(result.Message.Value);
            duplicates += seen[i] ? 1 : 0;
            seen[i] = true;
        }

        reader.Close();
        var losses = seen.LongCount(s => !s);
        return string.Create(CultureInfo.InvariantCulture, $"{count:N0} records, {duplicates} duplicates, {losses} losses: {(duplicates == 0 && losses == 0 ? "OK" : "FAILED")}");
    }

    /// <summary>One case: a record or a batch handler, its records, MaxBatchSize, and the call each makes.</summary>
    private sealed record BatchCase(string Name, int Records, bool Batch, int BatchSize, TimeSpan Call);

    /// <summary>Where the copy goes, the call's latency, and the run's clock, started by the first handler call.</summary>
    internal sealed class BatchProgress(string output, TimeSpan call)
    {
        private int _started;

        public string Output { get; } = output;

        public TimeSpan Call { get; } = call;

        public Reporting.RunMeter Meter { get; } = new();

        public void Called()
        {
            if (_started == 0 && Interlocked.Exchange(ref _started, 1) == 0)
            {
                Meter.Start();
            }
        }
    }

    /// <summary>One call to a slow service per record (Task.Delay with its token), then the copy.</summary>
    internal sealed class SlowRecordHandler(BatchProgress progress) : ITransactionalHandler<byte[], byte[]>
    {
        public async ValueTask HandleAsync(ConsumeResult<byte[], byte[]> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            progress.Called();
            await Task.Delay(progress.Call, cancellationToken);
            transaction.Produce(progress.Output, new Message<byte[], byte[]> { Key = record.Message.Key, Value = record.Message.Value });
        }
    }

    /// <summary>One call to a slow service per batch (a bulk lookup), then a copy of every record.</summary>
    internal sealed class SlowBatchHandler(BatchProgress progress) : ITransactionalBatchHandler<byte[], byte[]>
    {
        public async ValueTask HandleAsync(IReadOnlyList<ConsumeResult<byte[], byte[]>> records, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            progress.Called();
            await Task.Delay(progress.Call, cancellationToken);
            foreach (var record in records)
            {
                transaction.Produce(progress.Output, new Message<byte[], byte[]> { Key = record.Message.Key, Value = record.Message.Value });
            }
        }
    }
}
