using System.Globalization;
using KafkaTx.Reliability.Copying;

namespace KafkaTx.Reliability.Crash;

/// <summary>
/// What the crash and stop reports share: the run's description, the restarts' first commits, what the output
/// showed against the input, and the report's frame (the lines before and after each run's own, and the verdict).
/// Exactly once: every expected output record once, in order, and the group's offsets at the input's end.
/// </summary>
internal abstract class CopyReport
{
    public string Backend { get; init; } = string.Empty;

    public int Seed { get; init; }

    public long Records { get; init; }

    public int Partitions { get; init; }

    /// <summary>Output records each input record gives (2 with the split handler).</summary>
    public int OutputsPerRecord { get; init; } = 1;

    /// <summary>The handler's shape, as the report prints it.</summary>
    public string Handler { get; init; } = string.Empty;

    /// <summary>The copier's concurrency and the input's keys, as the report prints them; null for today's sequential run (no line).</summary>
    public string? Concurrency { get; init; }

    /// <summary>What order the verifier checked: per partition (today's), per key, or none.</summary>
    public CheckedOrder OrderChecked { get; init; } = CheckedOrder.Partition;

    /// <summary>From each restart to the new incarnation's first commit.</summary>
    public List<TimeSpan> RestartToCommit { get; } = [];

    public long OutputRecords { get; set; }

    public long Duplicates { get; set; }

    public long Losses { get; set; }

    /// <summary>Split handler: input records whose first output was committed without the second (each also a loss).</summary>
    public long HalfDone { get; set; }

    public int PartitionsOutOfOrder { get; set; }

    /// <summary>Keys with a record after a later one of the same key, where order is checked per key (several keys per partition).</summary>
    public int KeysOutOfOrder { get; set; }

    /// <summary>Records read after a later one of their partition or key: a defect where order is checked, information where not (unordered).</summary>
    public long RecordsOutOfOrder { get; set; }

    public int PartitionsFullyCommitted { get; set; }

    public TimeSpan Elapsed { get; set; }

    public long ExpectedOutputRecords => Records * OutputsPerRecord;

    public virtual bool ExactlyOnce =>
        Duplicates == 0 && Losses == 0 && PartitionsOutOfOrder == 0 && KeysOutOfOrder == 0 && OutputRecords == ExpectedOutputRecords && PartitionsFullyCommitted == Partitions;

    /// <summary>Whether the output line gives the expected count beside the count read.</summary>
    protected virtual bool PrintsExpectedOutput => false;

    /// <summary>Whether the report has a half-done line (printed only with two outputs per record).</summary>
    protected virtual bool PrintsHalfDone => false;

    /// <summary>The verdict line when the output is exactly once.</summary>
    protected abstract string ExactlyOnceVerdict { get; }

    /// <summary>Takes what the output showed, and how long the run took.</summary>
    public void Conclude(CopyVerdict verdict, TimeSpan elapsed)
    {
        OutputRecords = verdict.OutputRecords;
        Duplicates = verdict.Duplicates;
        Losses = verdict.Losses;
        HalfDone = verdict.HalfDone;
        PartitionsOutOfOrder = verdict.PartitionsOutOfOrder;
        KeysOutOfOrder = verdict.KeysOutOfOrder;
        RecordsOutOfOrder = verdict.RecordsOutOfOrder;
        PartitionsFullyCommitted = verdict.PartitionsFullyCommitted;
        Elapsed = elapsed;
    }

    public void Print(TextWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        writer.WriteLine();
        writer.WriteLine($"backend:                 {Backend}");
        writer.WriteLine($"seed:                    {Seed}");
        writer.WriteLine(string.Create(c, $"input:                   {Records:N0} records in {Partitions} partitions"));
        writer.WriteLine($"handler:                 {Handler}");
        if (Concurrency is not null)
        {
            writer.WriteLine($"concurrency:             {Concurrency}");
        }

        PrintFaults(writer);
        var expected = PrintsExpectedOutput ? string.Create(c, $" of {ExpectedOutputRecords:N0}") : string.Empty;
        writer.WriteLine(string.Create(c, $"output (read_committed): {OutputRecords:N0} records{expected}; duplicates {Duplicates}; losses {Losses}; {OrderFigure()}"));
        if (PrintsHalfDone && OutputsPerRecord == 2)
        {
            writer.WriteLine($"half-done records:       {HalfDone} (first output committed, second never; counted in the losses)");
        }

        writer.WriteLine($"group offsets at end:    {PartitionsFullyCommitted} of {Partitions} partitions");
        writer.WriteLine(string.Create(c, $"total time:              {Elapsed.TotalSeconds:F1} s"));
        writer.WriteLine(ExactlyOnce ? ExactlyOnceVerdict : "Verdict: NOT exactly once.");
    }

    /// <summary>What the output line says of order: per partition as ever, per key with several keys per partition, or nothing checked.</summary>
    private string OrderFigure() => OrderChecked switch
    {
        CheckedOrder.Key => $"keys out of order {KeysOutOfOrder}",
        CheckedOrder.None => $"order not checked (unordered; {RecordsOutOfOrder} records after a later one of their partition)",
        _ => $"partitions out of order {PartitionsOutOfOrder}",
    };

    /// <summary>The run's own lines, between the handler line and the output line.</summary>
    protected abstract void PrintFaults(TextWriter writer);

    protected void PrintRestartToCommit(TextWriter writer) => writer.WriteLine($"restart to next commit:  {Seconds(RestartToCommit)}");

    /// <summary>Times in seconds, as the report prints them: "-" for none.</summary>
    protected static string Seconds(IEnumerable<TimeSpan> times)
    {
        var list = times.ToList();
        return list.Count == 0 ? "-" : string.Join(", ", list.Select(t => t.TotalSeconds.ToString("F2", CultureInfo.InvariantCulture) + " s"));
    }
}

/// <summary>What order a run's verifier checks.</summary>
internal enum CheckedOrder
{
    /// <summary>Each input partition's records in offset order (one key per partition).</summary>
    Partition,

    /// <summary>Each key's records in offset order (several keys per partition).</summary>
    Key,

    /// <summary>No order (unordered): duplicates and losses only.</summary>
    None,
}
