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
/// Issue 17's workload, Confluent Parallel Consumer's published one: N records (10,000) in 1 partition, distinct keys,
/// a handler awaiting a uniform 0 to 5 ms (Task.Delay with its token) before it writes the copy, exactly once. Each
/// case times the processor from its first record handled to its last record committed, then reads the output with
/// read_committed and checks it: every record once, and each key's records in input order (not checked unordered).
/// A second table, without I/O: the plain copy handler in key order at MaxConcurrency 16 against 1.
/// </summary>
internal static class ParallelRun
{
    public static async Task<int> RunAsync(ThroughputBackend backend, ThroughputSettings settings, string environment, CancellationToken cancellationToken)
    {
        var records = settings.Records ?? 10_000;
        var n = settings.MaxConcurrency;
        var keys = settings.Keys;
        ParallelCase[] cases =
        [
            new($"key order, {keys[0]:N0} keys, 1 partition, MaxConcurrency 1", records, 1, keys[0], 1, ProcessingOrder.Key, settings.MaxDelayMs),
            .. keys.Select(k => new ParallelCase($"key order, {k:N0} keys, 1 partition, MaxConcurrency {n}", records, 1, k, n, ProcessingOrder.Key, settings.MaxDelayMs)),
            new($"partition order, 3 partitions, MaxConcurrency {n}", records, 3, keys[0], n, ProcessingOrder.Partition, settings.MaxDelayMs),
            new($"unordered, 1 partition, MaxConcurrency {n}", records, 1, keys[0], n, ProcessingOrder.Unordered, settings.MaxDelayMs),
        ];
        var copyRecords = settings.CopyRecords;
        ParallelCase[] noIo =
        [
            new("no I/O: copy, key order, MaxConcurrency 1", copyRecords, 1, keys[0], 1, ProcessingOrder.Key, null),
            new("no I/O: copy, key order, MaxConcurrency 16", copyRecords, 1, keys[0], 16, ProcessingOrder.Key, null),
        ];

        var table = new StringBuilder();
        var chart = new List<(string Heading, IReadOnlyList<Reporting.BarChart.Bar> Bars)>();
        table.AppendLine(CultureInfo.InvariantCulture, $"Parallel handling, {backend.Description}; {environment}; rounds {settings.Rounds}; median seconds end to end (first record handled to last committed).");
        table.AppendLine();
        if (settings.ParallelTables.Contains("io"))
        {
            table.AppendLine(CultureInfo.InvariantCulture, $"{records:N0} records, handler awaiting a uniform 0 to {settings.MaxDelayMs} ms (Task.Delay with its token), then writing the copy:");
            var withIo = await MeasureAsync(backend, settings, cases, table, cancellationToken);
            table.AppendLine(CultureInfo.InvariantCulture, $"Speed-up at MaxConcurrency {n} ({keys[0]:N0} keys) over MaxConcurrency 1: {Median(withIo[0]) / Median(withIo[1]):F1}x");
            chart.Add(($"{records:N0} records, a handler awaiting 0 to {settings.MaxDelayMs} ms", Bars(cases, withIo)));
            table.AppendLine();
        }

        if (settings.ParallelTables.Contains("no-io"))
        {
            var copy = await NoIoComparison.RunAsync(backend, settings, noIo, table, cancellationToken);
            chart.Add(($"{copyRecords:N0} records, the plain copy handler (no I/O)", Bars(noIo, copy)));
        }

        Console.WriteLine();
        Console.WriteLine(table);
        if (settings.ReportPath is { } path)
        {
            await File.WriteAllTextAsync(path, table.ToString(), cancellationToken);
            Console.WriteLine($"Report written to {path}");
        }

        if (settings.ChartPath is { } chartPath)
        {
            await File.WriteAllTextAsync(chartPath, Reporting.BarChart.Render($"Concurrent handling, exactly once, {backend.ShortName}", chart), cancellationToken);
            Console.WriteLine($"Chart written to {chartPath}");
        }

        return 0;
    }

    internal static double Median(List<double> values) => values.Count == 0 ? double.NaN : Reporting.WorkloadSummary.Median(values);

    private static List<Reporting.BarChart.Bar> Bars(ParallelCase[] cases, List<double>[] seconds) =>
        [.. cases.Select((c, i) => new Reporting.BarChart.Bar(c.Name, c.Records / Median(seconds[i]), c.Records / seconds[i].DefaultIfEmpty(double.NaN).Max(), c.Records / seconds[i].DefaultIfEmpty(double.NaN).Min()))];

    /// <summary>Runs every case once per round, alternating which goes first; appends a table of medians; returns each case's seconds, round by round.</summary>
    private static async Task<List<double>[]> MeasureAsync(ThroughputBackend backend, ThroughputSettings settings, ParallelCase[] cases, StringBuilder table, CancellationToken cancellationToken)
    {
        var seconds = cases.Select(_ => new List<double>()).ToArray();
        var cpu = cases.Select(_ => new List<double>()).ToArray();
        var verdicts = cases.Select(_ => new List<string>()).ToArray();
        for (var round = 1; round <= settings.Rounds && !cancellationToken.IsCancellationRequested; round++)
        {
            for (var j = 0; j < cases.Length; j++)
            {
                var i = (j + round - 1) % cases.Length;
                Console.Write($"[parallel, round {round}/{settings.Rounds}] {cases[i].Name}: ");
                var (elapsed, cpuTime, _, verdict) = await RunOnceAsync(backend, settings, cases[i], cancellationToken);
                seconds[i].Add(elapsed.TotalSeconds);
                cpu[i].Add(cpuTime.TotalMicroseconds / cases[i].Records);
                verdicts[i].Add(verdict);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{elapsed.TotalSeconds:F2} s, {cases[i].Records / elapsed.TotalSeconds:N0} records/s, {cpu[i][^1]:F2} us CPU per record; {verdict}"));
            }
        }

        var medians = seconds.Select(Median).ToArray();
        table.AppendLine("| case | seconds (median) | spread | records/s | CPU per record (median) | output (read_committed) |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: | --- |");
        for (var i = 0; i < cases.Length; i++)
        {
            var spread = seconds[i].Count == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{seconds[i].Min():F2}-{seconds[i].Max():F2}");
            table.AppendLine(CultureInfo.InvariantCulture, $"| {cases[i].Name} | {medians[i]:F2} | {spread} | {cases[i].Records / medians[i]:N0} | {(cpu[i].Count == 0 ? double.NaN : Reporting.WorkloadSummary.Median(cpu[i])):F2} us | {string.Join("; ", verdicts[i].Distinct())} |");
        }

        return seconds;
    }

    /// <summary>
    /// Runs the case once: into a new output topic, from <paramref name="seededInput"/> (read by a new group) or from an
    /// input seeded for this run alone. Returns the elapsed time, the process's CPU time and the bytes it allocated, all
    /// from the first record handled to the last committed, and the output's verdict.
    /// </summary>
    internal static async Task<(TimeSpan Elapsed, TimeSpan Cpu, long Allocated, string Verdict)> RunOnceAsync(ThroughputBackend backend, ThroughputSettings settings, ParallelCase workload, CancellationToken cancellationToken, string? seededInput = null)
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        var (input, output) = (seededInput ?? "parallel-in-" + id, "parallel-out-" + id);
        backend.CreateTopic(output, workload.Partitions);
        if (seededInput is null)
        {
            backend.CreateTopic(input, workload.Partitions);
            Seed(backend, workload, input);
        }

        // Every run starts from a collected heap: the in-memory Kafka keeps every record, and what the collector had
        // left from the run before decided whether a run's gen0 collections cost 0.2 or 1.0 us per record.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        var progress = new ParallelProgress(output, workload.MaxDelayMs);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(progress);
        var batching = new Workload(null, TimeSpan.FromMilliseconds(100), 8, workload.Records, settings.Deadline, workload.Partitions, settings.LingerMs);
        backend.Use(builder.Services.AddKafkaTransactions(ThroughputMode.KafkaTxOptions(backend, batching, "parallel-tx-" + id, settings.DeliveryTracking)))
            .AddTransactionalProcessor<ParallelHandler>(o =>
            {
                o.Topics.Add(input);
                o.GroupId = "parallel-group-" + id;
                o.MaxConcurrency = workload.MaxConcurrency;
                o.Order = workload.Order;
                o.MaxBufferedRecords = Math.Max(o.MaxBufferedRecords, workload.MaxConcurrency);
                o.StopApplicationOnFailure = false;
                if (settings.MaxBatchSize is { } size)
                {
                    o.MaxBatchSize = size;
                }
            });
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
        var cpu = progress.CpuTime;
        var allocated = progress.Allocated;
        await host.StopAsync(CancellationToken.None);
        if (processor.CommittedRecords < workload.Records)
        {
            throw new InvalidOperationException($"{workload.Name}: {processor.CommittedRecords:N0} of {workload.Records:N0} records committed in 5 minutes; the processor is {processor.State}.", processor.Failure);
        }

        var verdict = Verify(backend, workload, output);
        if (seededInput is null)
        {
            backend.DeleteTopicData(input, workload.Partitions);
        }

        backend.DeleteTopicData(output, workload.Partitions);
        return (elapsed, cpu, allocated, verdict);
    }

    /// <summary>Record i goes to partition i % partitions with key k(i % keys); its value is i.</summary>
    internal static void Seed(ThroughputBackend backend, ParallelCase workload, string topic)
    {
        using var producer = backend.CreateProducer(new ProducerConfig { BootstrapServers = backend.BootstrapServers, EnableIdempotence = true, LingerMs = 5 });
        for (var i = 0; i < workload.Records; i++)
        {
            var value = new byte[8];
            BinaryPrimitives.WriteInt64BigEndian(value, i);
            var message = new Message<byte[]?, byte[]?> { Key = Encoding.ASCII.GetBytes("k" + (i % workload.Keys).ToString(CultureInfo.InvariantCulture)), Value = value };
            producer.ProduceWaitingForRoom(new TopicPartition(topic, i % workload.Partitions), message, TimeSpan.FromMilliseconds(10));
        }

        if (producer.Flush(TimeSpan.FromMinutes(2)) > 0)
        {
            throw new TimeoutException($"The input of {workload.Name} was not all written within 2 minutes.");
        }
    }

    /// <summary>Reads the output with read_committed: every input record exactly once; each key's records in input order, unless unordered.</summary>
    private static string Verify(ThroughputBackend backend, ParallelCase workload, string topic)
    {
        using var reader = backend.CreateConsumer(new ConsumerConfig
        {
            BootstrapServers = backend.BootstrapServers,
            GroupId = "parallel-verifier-" + Guid.NewGuid().ToString("N"),
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        });
        reader.Assign(Enumerable.Range(0, workload.Partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var seen = new bool[workload.Records];
        var lastOfKey = new long[workload.Keys];
        Array.Fill(lastOfKey, -1);
        long count = 0, duplicates = 0, outOfOrder = 0;
        var atEnd = new HashSet<int>();
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (atEnd.Count < workload.Partitions && DateTime.UtcNow < deadline)
        {
            var result = reader.Consume(TimeSpan.FromMilliseconds(500));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                atEnd.Add(result.Partition.Value);
                continue;
            }

            atEnd.Remove(result.Partition.Value);
            count++;
            var i = BinaryPrimitives.ReadInt64BigEndian(result.Message.Value);
            duplicates += seen[i] ? 1 : 0;
            seen[i] = true;
            var key = i % workload.Keys;
            outOfOrder += i < lastOfKey[key] ? 1 : 0;
            lastOfKey[key] = Math.Max(lastOfKey[key], i);
        }

        reader.Close();
        var losses = seen.LongCount(s => !s);
        var exactlyOnce = duplicates == 0 && losses == 0 && atEnd.Count == workload.Partitions;
        var ordered = workload.Order == ProcessingOrder.Unordered || outOfOrder == 0;
        var order = workload.Order == ProcessingOrder.Unordered ? "order not checked" : $"{outOfOrder} out of key order";
        return string.Create(CultureInfo.InvariantCulture, $"{count:N0} records, {duplicates} duplicates, {losses} losses, {order}: {(exactlyOnce && ordered ? "OK" : "FAILED")}");
    }

    /// <summary>One case: records in how many partitions, how many distinct keys, the processor's concurrency and order, and the handler's delay (none: the plain copy).</summary>
    internal sealed record ParallelCase(string Name, int Records, int Partitions, int Keys, int MaxConcurrency, ProcessingOrder Order, int? MaxDelayMs);

    /// <summary>Where the copy goes, the handler's delay, and the run's clock, started by the first record handled.</summary>
    internal sealed class ParallelProgress(string output, int? maxDelayMs)
    {
        private int _started;
        private TimeSpan _cpuAtStart;
        private long _allocatedAtStart;

        public string Output { get; } = output;

        public int? MaxDelayMs { get; } = maxDelayMs;

        public Reporting.RunMeter Meter { get; } = new();

        /// <summary>
        /// The CPU time every thread of the process spent since the first record was handled: on a machine busy with
        /// other work it moves far less than the elapsed time, so it compares cases where elapsed times are noise.
        /// </summary>
        public TimeSpan CpuTime => Environment.CpuUsage.TotalTime - _cpuAtStart;

        /// <summary>The bytes every thread of the process allocated since the first record was handled.</summary>
        public long Allocated => GC.GetTotalAllocatedBytes(precise: true) - _allocatedAtStart;

        public void RecordHandled()
        {
            if (_started == 0 && Interlocked.Exchange(ref _started, 1) == 0)
            {
                _cpuAtStart = Environment.CpuUsage.TotalTime;
                _allocatedAtStart = GC.GetTotalAllocatedBytes(precise: true);
                Meter.Start();
            }
        }
    }

    /// <summary>Awaits a uniform 0 to MaxDelayMs with its token (a call to a slow service), then writes the copy; without a delay, copies at once.</summary>
    internal sealed class ParallelHandler(ParallelProgress progress) : ITransactionalHandler<byte[], byte[]>
    {
        public async ValueTask HandleAsync(ConsumeResult<byte[], byte[]> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            progress.RecordHandled();
            if (progress.MaxDelayMs is { } max)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * max), cancellationToken);
            }

            transaction.Produce(progress.Output, new Message<byte[], byte[]> { Key = record.Message.Key, Value = record.Message.Value });
        }
    }
}
