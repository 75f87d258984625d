// Side-by-side throughput of KafkaTx and the hand-written code it replaces, alternating the contenders in one process:
//
//   dotnet run -c Release --project benchmarks/KafkaTx.Throughput -- --records-per-transaction 10,100,1000 --rounds 3
//   dotnet run -c Release --project benchmarks/KafkaTx.Throughput -- --bootstrap-servers localhost:9092 --commit-interval 100ms
//   dotnet run -c Release --project benchmarks/KafkaTx.Throughput -- pool --pool-sizes 1,2,4,8
//   dotnet run -c Release --project benchmarks/KafkaTx.Throughput -- parallel --rounds 1   (issue 17: concurrent handling)
//   dotnet run -c Release --project benchmarks/KafkaTx.Throughput -- batch                 (issue 17: the batch handler)
//
// See README.md for every option and docs/performance.md for the figures.
using System.Globalization;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using KafkaTx.Throughput;
using KafkaTx.Throughput.Backends;
using KafkaTx.Throughput.Modes;
using KafkaTx.Throughput.Reporting;

var settings = ThroughputSettings.Parse(args);
using var backend = ThroughputBackend.Create(settings.Backend, settings.BootstrapServers);
using var latencies = new KafkaTxCommitLatencies();
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

var environment = $"{RuntimeInformation.OSDescription}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, Confluent.Kafka {typeof(IProducer<,>).Assembly.GetName().Version?.ToString(3)}, librdkafka {Library.VersionString}";
Console.WriteLine($"Backend: {backend.Description}");
Console.WriteLine($"Machine: {environment}");
Console.WriteLine($"KafkaTx DeliveryTracking: {settings.DeliveryTracking}; linger.ms {settings.LingerMs} for every producer");

if (settings.Command == "pool")
{
    return await PoolRun.RunAsync(backend, settings, environment, cancel.Token);
}

if (settings.Command == "parallel")
{
    return await ParallelRun.RunAsync(backend, settings, environment, cancel.Token);
}

if (settings.Command == "batch")
{
    return await BatchRun.RunAsync(backend, settings, environment, cancel.Token);
}

ThroughputMode[] modes = [new RawTransactionalLoop(), new UnitOfWorkLoop(latencies, settings.DeliveryTracking), new ProcessorCopy(latencies, settings.DeliveryTracking), new HandWrittenCopyLoop(), new IdempotentProducer()];
modes = [.. modes.Where(m => settings.Modes.Contains(m.Letter))];
var names = modes.ToDictionary(m => m.Letter, m => m.Name);
var shapes = settings.RecordsPerTransaction.Select(n => ((int?)n, (TimeSpan?)null))
    .Concat(settings.CommitInterval is { } interval ? [((int?)null, (TimeSpan?)interval)] : [])
    .ToList();
var summaries = new List<WorkloadSummary>();
var run = 0;
foreach (var size in settings.RecordSizes)
{
    foreach (var (perTransaction, commitInterval) in shapes)
    {
        var records = perTransaction is { } n ? (settings.RecordsPerRun + n - 1) / n * n : settings.RecordsPerRun; // whole transactions
        var workload = new Workload(perTransaction, commitInterval, size, records, settings.Deadline, settings.Partitions, settings.LingerMs);
        var summary = new WorkloadSummary(workload);
        summaries.Add(summary);
        var input = $"throughput-in-{Guid.NewGuid():N}"[..24];
        if (modes.Any(m => m.Copies))
        {
            Seed(backend, workload, input);
        }

        if (settings.Warmup)
        {
            // One short unrecorded run of each mode first: the JIT compiles the hot paths of every contender before
            // any is measured, so that whoever runs first is not the one paying for it.
            var warmup = workload with { Records = Math.Max(workload.RecordsPerTransaction ?? 1, workload.Records / 10), Deadline = TimeSpan.FromSeconds(2) };
            foreach (var mode in modes)
            {
                var id = $"w{++run:D3}-{Guid.NewGuid():N}"[..16];
                var warmupNames = new RunNames(input, "throughput-out-" + id, "throughput-group-" + id, "throughput-tx-" + id);
                backend.CreateTopic(warmupNames.Output, workload.Partitions);
                await mode.RunAsync(backend, warmup, warmupNames, cancel.Token);
                backend.DeleteTopicData(warmupNames.Output, workload.Partitions);
            }

            Console.WriteLine($"[{workload.Shape}, {WorkloadSummary.Size(size)}] warmed up every mode.");
        }

        for (var round = 1; round <= settings.Rounds && !cancel.IsCancellationRequested; round++)
        {
            // Alternate: each round starts with a different contender, so that no mode always runs first or last.
            foreach (var mode in modes.Skip((round - 1) % modes.Length).Concat(modes.Take((round - 1) % modes.Length)))
            {
                var id = $"{++run:D3}-{Guid.NewGuid():N}"[..16];
                var runNames = new RunNames(input, "throughput-out-" + id, "throughput-group-" + id, "throughput-tx-" + id);
                backend.CreateTopic(runNames.Output, workload.Partitions);
                Console.Write($"[{workload.Shape}, {WorkloadSummary.Size(size)}, round {round}/{settings.Rounds}] ({mode.Letter}) {mode.Name}: ");
                GC.Collect(); // every run from a collected heap: what the last one left decides what the collector costs this one
                GC.WaitForPendingFinalizers();
                GC.Collect();
                var result = await mode.RunAsync(backend, workload, runNames, cancel.Token);
                backend.DeleteTopicData(runNames.Output, workload.Partitions);
                summary.Add(result);
                Console.WriteLine($"{result.RecordsPerSecond:N0} records/s, {result.Records:N0} records in {result.Elapsed.TotalSeconds:F2} s");
            }
        }

        backend.DeleteTopicData(input, workload.Partitions);
        Console.WriteLine();
        Console.WriteLine(summary.Table(names));
    }
}

if (settings.ReportPath is { } reportPath)
{
    var report = $"Backend: {backend.Description}  \nMachine: {environment}  \nKafkaTx DeliveryTracking: {settings.DeliveryTracking}, linger.ms {settings.LingerMs}  \nRounds: {settings.Rounds}, records per run: {settings.RecordsPerRun:N0} (or {settings.Deadline.TotalSeconds:F0} s), {settings.Partitions} partitions\n\n"
        + string.Join("\n", summaries.Select(s => s.Table(names)));
    File.WriteAllText(reportPath, report);
    Console.WriteLine($"Report written to {reportPath}");
}

if (settings.ChartPath is { } chartPath)
{
    File.WriteAllText(chartPath, SvgChart.Render($"Throughput, {WorkloadSummary.Size(settings.RecordSizes[0])} records, {backend.ShortName}", [.. summaries.Where(s => s.Workload.RecordSize == settings.RecordSizes[0])], names));
    Console.WriteLine($"Chart written to {chartPath}");
}

return 0;

static void Seed(ThroughputBackend backend, Workload workload, string topic)
{
    backend.CreateTopic(topic, workload.Partitions);
    using var producer = backend.CreateProducer(new ProducerConfig { BootstrapServers = backend.BootstrapServers, EnableIdempotence = true, LingerMs = 5 });
    var message = new Message<byte[]?, byte[]?> { Value = workload.Value };
    for (var i = 0; i < workload.Records; i++)
    {
        message.Key = workload.Keys[i % workload.Keys.Length];
        producer.ProduceWaitingForRoom(new TopicPartition(topic, Partition.Any), message, TimeSpan.FromMilliseconds(10));
    }

    producer.Flush(TimeSpan.FromMinutes(2));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Seeded {workload.Records:N0} records of {WorkloadSummary.Size(workload.RecordSize)} into {topic} for the copying modes."));
}
