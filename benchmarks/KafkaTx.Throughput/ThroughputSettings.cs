using System.Globalization;

namespace KafkaTx.Throughput;

/// <summary>The command line: what to measure, where, and how often.</summary>
internal sealed class ThroughputSettings
{
    public string Command { get; private init; } = "run";

    public string Backend { get; private init; } = "in-memory";

    public string? BootstrapServers { get; private init; }

    public int[] RecordsPerTransaction { get; private init; } = [10, 100, 1000];

    public TimeSpan? CommitInterval { get; private init; }

    public int[] RecordSizes { get; private init; } = [1024];

    public int Rounds { get; private init; } = 3;

    public int? Records { get; private init; }

    public TimeSpan Deadline { get; private init; } = TimeSpan.FromSeconds(10);

    public string[] Modes { get; private init; } = ["a", "b", "c", "d", "e"];

    public int Partitions { get; private init; } = 3;

    /// <summary>linger.ms for every producer, KafkaTx's included.</summary>
    public int LingerMs { get; private init; } = 20;

    public int[] PoolSizes { get; private init; } = [1, 2, 4, 8];

    public int Callers { get; private init; } = 16;

    public string? ReportPath { get; private init; }

    /// <summary>Whether every mode runs once, unrecorded, before the rounds (to have the JIT done).</summary>
    public bool Warmup { get; private init; } = true;

    /// <summary>KafkaTx's DeliveryTracking for modes (b) and (c).</summary>
    public DeliveryTracking DeliveryTracking { get; private init; } = new KafkaTransactionsOptions().DeliveryTracking;

    public string? ChartPath { get; private init; }

    /// <summary>parallel: the processor's MaxConcurrency in the concurrent cases (the baseline is 1).</summary>
    public int MaxConcurrency { get; private init; } = 100;

    /// <summary>parallel: distinct keys of the workload, one key-order case each; the first is also the baseline's and the other orders'.</summary>
    public int[] Keys { get; private init; } = [10_000, 100];

    /// <summary>parallel: the handler awaits a uniform 0 to this many milliseconds per record.</summary>
    public int MaxDelayMs { get; private init; } = 5;

    /// <summary>parallel: records of the no-I/O comparison (the plain copy handler).</summary>
    public int CopyRecords { get; private init; } = 1_000_000;

    /// <summary>parallel: rounds of the no-I/O comparison (one run of each case a round): --rounds when given, else 10.</summary>
    public int NoIoRounds { get; private init; } = 10;

    /// <summary>parallel: which tables to run: "io" (the awaiting handler), "no-io" (the plain copy), or both.</summary>
    public string[] ParallelTables { get; private init; } = ["io", "no-io"];

    /// <summary>parallel: the processor's MaxBatchSize; null for its default. batch: the batch size (null: 500).</summary>
    public int? MaxBatchSize { get; private init; }

    /// <summary>batch: the milliseconds of the handler's call to a slow service (per record, or per batch).</summary>
    public int CallMs { get; private init; } = 5;

    /// <summary>Records per run: enough for a few seconds on each backend, bounded so the in-memory one fits in memory.</summary>
    public int RecordsPerRun => Records ?? Backend switch
    {
        "in-memory" => 300_000,
        "mock" => 50_000,
        _ => 300_000,
    };

    public static ThroughputSettings Parse(string[] args)
    {
        var command = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "run";
        string? Value(string name)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        }

        int[]? Ints(string name) => Value(name)?.Split(',').Select(v => int.Parse(v, NumberStyles.Integer, CultureInfo.InvariantCulture)).ToArray();
        var interval = Value("--commit-interval");
        var settings = new ThroughputSettings
        {
            Command = command,
            Backend = Value("--bootstrap-servers") is not null && Value("--backend") is null ? "kafka" : Value("--backend") ?? "in-memory",
            BootstrapServers = Value("--bootstrap-servers"),
            RecordsPerTransaction = interval is not null && Value("--records-per-transaction") is null ? [] : Ints("--records-per-transaction") ?? [10, 100, 1000],
            CommitInterval = interval is null ? null : TimeSpan.FromMilliseconds(double.Parse(interval.Replace("ms", string.Empty, StringComparison.Ordinal), CultureInfo.InvariantCulture)),
            RecordSizes = Ints("--record-size") ?? [1024],
            Rounds = Ints("--rounds")?[0] ?? 3,
            Records = Ints("--records")?[0],
            Deadline = TimeSpan.FromSeconds(Ints("--seconds")?[0] ?? 10),
            Modes = Value("--modes")?.Split(',') ?? ["a", "b", "c", "d", "e"],
            Partitions = Ints("--partitions")?[0] ?? 3,
            LingerMs = Ints("--linger")?[0] ?? 20,
            PoolSizes = Ints("--pool-sizes") ?? [1, 2, 4, 8],
            Callers = Ints("--callers")?[0] ?? 16,
            ReportPath = Value("--report"),
            Warmup = Value("--warmup") is not "false",
            DeliveryTracking = Value("--delivery-tracking") switch
            {
                null => new KafkaTransactionsOptions().DeliveryTracking, // KafkaTx's default
                "every" => DeliveryTracking.EveryRecord,
                "first" => DeliveryTracking.FirstRecordPerTopic,
                "none" => DeliveryTracking.None,
                var other => throw new ArgumentException($"--delivery-tracking {other}: use every, first or none."),
            },
            ChartPath = Value("--chart"),
            MaxConcurrency = Ints("--max-concurrency")?[0] ?? 100,
            Keys = Ints("--keys") ?? [10_000, 100],
            MaxDelayMs = Ints("--max-delay-ms")?[0] ?? 5,
            CopyRecords = Ints("--copy-records")?[0] ?? 1_000_000,
            NoIoRounds = Ints("--rounds")?[0] ?? 10,
            MaxBatchSize = Ints("--max-batch-size")?[0],
            ParallelTables = Value("--tables")?.Split(',') ?? ["io", "no-io"],
            CallMs = Ints("--call-ms")?[0] ?? 5,
        };
        return settings;
    }
}
