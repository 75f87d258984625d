using System.Globalization;
using KafkaTx.Reliability.Copying;

namespace KafkaTx.Reliability.Crash;

/// <summary>
/// How concurrently a crash or stop run copies, and how its input is keyed: the processor's MaxConcurrency and Order,
/// and the keys per input partition. The default is today's run: one record at a time, one key per partition.
/// </summary>
/// <param name="MaxConcurrency">The copier processor's MaxConcurrency.</param>
/// <param name="Order">The copier processor's Order.</param>
/// <param name="Keys">
/// Keys per input partition: input sequence <c>s</c> of partition <c>p</c> has key <c>p{p}-k{s % Keys}</c>, so that
/// each key's records are spread over its partition and records of different keys can overtake each other when
/// handled concurrently. 1: every record of a partition has the partition's key, as today.
/// </param>
/// <param name="BatchHandler">
/// Whether the copier's handler is a batch handler, one call per transaction (<c>--batch-handler</c>); MaxConcurrency
/// is then 1.
/// </param>
/// <param name="IgnoreCancellationEvery">
/// One handler call in this many (at random) ignores its cancellation token for <see cref="CopierSettings.IgnoreCancellationFor"/>,
/// and the copier's ShutdownTimeout is cut to <see cref="CopierSettings.ShortShutdownTimeout"/>: stops, revokes,
/// losses and failed batches then abandon such calls. 0: every call honours its token.
/// </param>
internal sealed record CopyConcurrency(int MaxConcurrency = 1, ProcessingOrder Order = ProcessingOrder.Key, int Keys = 1, bool BatchHandler = false, int IgnoreCancellationEvery = 0)
{
    /// <summary>Today's run: one record at a time, one key per partition.</summary>
    public static CopyConcurrency Sequential { get; } = new();

    /// <summary>Whether the verifier counts a record after a later one of its stream as a defect: in every order but Unordered.</summary>
    public bool ChecksOrder => Order != ProcessingOrder.Unordered;

    /// <summary>
    /// What the verifier checks the order of. With several keys per partition, the records of one input partition go
    /// to several output partitions, which a reader reads one after the other: only each key's order can be read
    /// back, and it is what key order promises (partition order promises more, and implies it).
    /// </summary>
    public CheckedOrder OrderChecked => !ChecksOrder ? CheckedOrder.None : Keys > 1 ? CheckedOrder.Key : CheckedOrder.Partition;

    /// <summary>The keys per partition when none are given: several in key order with concurrency, so that key order means something; else 1, as today.</summary>
    public const int DefaultConcurrentKeys = 16;

    /// <summary>
    /// Reads <c>--max-concurrency N --order key|partition|unordered --keys N --batch-handler --ignore-cancellation N</c>. Keys default to
    /// <see cref="DefaultConcurrentKeys"/> in key order with MaxConcurrency above 1, else to 1 (today's input).
    /// </summary>
    public static CopyConcurrency Parse(Arguments arguments)
    {
        var maxConcurrency = arguments.Int("--max-concurrency", 1);
        var order = ProcessingOrders.Parse(arguments.Optional("--order") ?? "key");
        var concurrency = new CopyConcurrency(
            maxConcurrency,
            order,
            arguments.Int("--keys", maxConcurrency > 1 && order == ProcessingOrder.Key ? DefaultConcurrentKeys : 1),
            arguments.Flag("--batch-handler"),
            arguments.Int("--ignore-cancellation", 0));
        if (concurrency.MaxConcurrency is < 1 or > 1_000)
        {
            throw new ArgumentException($"--max-concurrency {concurrency.MaxConcurrency}: expected 1 to 1000.");
        }

        if (concurrency.BatchHandler && concurrency.MaxConcurrency > 1)
        {
            throw new ArgumentException($"--batch-handler with --max-concurrency {concurrency.MaxConcurrency}: a batch handler gets a transaction's records in one call, one transaction at a time; leave --max-concurrency at 1.");
        }

        if (concurrency.Keys < 1)
        {
            throw new ArgumentException($"--keys {concurrency.Keys}: expected at least 1 (keys per input partition).");
        }

        if (concurrency.IgnoreCancellationEvery < 0)
        {
            throw new ArgumentException($"--ignore-cancellation {concurrency.IgnoreCancellationEvery}: expected 0 (never) or N (one call in N).");
        }

        return concurrency;
    }

    /// <summary>The copier settings with this concurrency.</summary>
    public CopierSettings Apply(CopierSettings settings) => settings with { MaxConcurrency = MaxConcurrency, Order = Order, BatchHandler = BatchHandler, IgnoreCancellationEvery = IgnoreCancellationEvery };

    /// <summary>How it reads in a report.</summary>
    public string Describe()
    {
        var handling = BatchHandler ? "batch handler (a transaction's records in one call)" : $"MaxConcurrency {MaxConcurrency}, order {Order.Name()}";
        var checkedOrder = OrderChecked switch { CheckedOrder.Key => "per key", CheckedOrder.None => "none (unordered)", _ => "per partition" };
        var described = string.Create(CultureInfo.InvariantCulture, $"{handling}, {Keys} key{(Keys == 1 ? string.Empty : "s")} per partition; order checked {checkedOrder}");
        return IgnoreCancellationEvery == 0 ? described : described + string.Create(
            CultureInfo.InvariantCulture,
            $"; one call in {IgnoreCancellationEvery} ignores its token for {CopierSettings.IgnoreCancellationFor.TotalSeconds:0.#} s (ShutdownTimeout {CopierSettings.ShortShutdownTimeout.TotalMilliseconds:0} ms)");
    }
}
