using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Reliability.Verification;

namespace KafkaTx.Reliability.Copying;

/// <summary>What the copier's handler does with each input record.</summary>
internal enum HandlerShape
{
    /// <summary>Produces the copy at once, awaiting nothing: the crash command's default.</summary>
    Copy,

    /// <summary>
    /// Awaits a call with its cancellation token (<see cref="CopierSettings.HandlerDelay"/>), then produces the copy:
    /// a handler that calls a service before it writes, as real handlers do.
    /// </summary>
    Await,

    /// <summary>
    /// Produces a first record, awaits a call with its cancellation token, then produces a second: two output records
    /// per input record, so that a handler's half-done work, if it were ever committed, shows in the output.
    /// </summary>
    Split,
}

/// <summary>Names and output counts of the handler shapes.</summary>
internal static class HandlerShapes
{
    /// <summary>The shape a command-line name stands for: copy, await or split.</summary>
    public static HandlerShape Parse(string name) => name switch
    {
        "copy" => HandlerShape.Copy,
        "await" => HandlerShape.Await,
        "split" => HandlerShape.Split,
        _ => throw new ArgumentException($"--handler {name}: expected copy, await or split."),
    };

    /// <summary>The command-line name of a shape.</summary>
    public static string Name(this HandlerShape shape) => shape switch
    {
        HandlerShape.Await => "await",
        HandlerShape.Split => "split",
        _ => "copy",
    };

    /// <summary>
    /// Output records per input record. Split writes input <c>p:s</c> as <c>p:2s</c> then <c>p:2s+1</c>, so the
    /// verifier checks one sequence twice as long as the input: a first half committed without its second is a
    /// loss, a first half committed and then written again is a duplicate.
    /// </summary>
    public static int OutputsPerRecord(this HandlerShape shape) => shape == HandlerShape.Split ? 2 : 1;

    /// <summary>How the shape reads in a report.</summary>
    public static string Describe(this HandlerShape shape, TimeSpan delay, bool randomDelay = false)
    {
        var call = randomDelay
            ? string.Create(CultureInfo.InvariantCulture, $"await 0 to {delay.TotalMilliseconds:0.###} ms (uniform) with the token")
            : string.Create(CultureInfo.InvariantCulture, $"await {delay.TotalMilliseconds:0.###} ms with the token");
        return shape switch
        {
            HandlerShape.Await => $"await ({call}, then produce)",
            HandlerShape.Split => $"split (produce, {call}, produce: 2 output records per input record)",
            _ => "copy (produce, await nothing)",
        };
    }
}

/// <summary>How the armed await ended: whether the stop had begun by then, and whether the handler's token cancelled it.</summary>
/// <param name="StopBegun">The copier's host had begun stopping before the await ended: the stop landed while the handler awaited.</param>
/// <param name="Cancelled">The handler's cancellation token cancelled the await (before a fix of issue 15, the stop itself does).</param>
internal sealed record ArmedAwaitEnd(bool StopBegun, bool Cancelled)
{
    private const string Prefix = "await-ended ";

    /// <summary>The line a copier child process prints for it.</summary>
    public string ToLine() => Prefix + (Cancelled ? "cancelled" : "completed") + (StopBegun ? " during-stop" : " before-stop");

    /// <summary>Reads a line printed by <see cref="ToLine"/>; null for any other line.</summary>
    public static ArmedAwaitEnd? FromLine(string line) =>
        line.StartsWith(Prefix, StringComparison.Ordinal)
            ? new ArmedAwaitEnd(line.EndsWith(" during-stop", StringComparison.Ordinal), line.Contains(" cancelled", StringComparison.Ordinal))
            : null;
}

/// <summary>
/// Where a copier writes and how its handler behaves; the switch that pauses it in mid-transaction (the in-process
/// SIGSTOP); and the armed await, which makes a graceful stop land while a handler awaits a call with its token.
/// </summary>
internal sealed class CopyTarget
{
    /// <summary>The longest the armed call waits for the stop to begin; past it, the call returns and the stop did not land in it.</summary>
    private static readonly TimeSpan ArmedCallLimit = TimeSpan.FromSeconds(60);

    private readonly object _sync = new();
    private readonly TaskCompletionSource<string> _awaitingStop = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopBegun = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource? _paused;
    private long _pauseAt = long.MaxValue;
    private long _handled;
    private long _armAt = long.MaxValue;
    private ArmedAwaitEnd? _armedAwait;

    public CopyTarget(CopierSettings settings)
    {
        Topic = settings.Output;
        Shape = settings.Handler;
        Delay = settings.HandlerDelay;
        RandomDelay = settings.RandomDelay;
        StopCall = settings.StopCall;
        IgnoreCancellationEvery = settings.IgnoreCancellationEvery;
    }

    public string Topic { get; }

    public HandlerShape Shape { get; }

    /// <summary>How long the handler's call takes (Await and Split).</summary>
    public TimeSpan Delay { get; }

    /// <summary>Whether each call awaits a uniform random time from 0 to <see cref="Delay"/>: handlers that overtake each other when run concurrently.</summary>
    public bool RandomDelay { get; }

    /// <summary>One call in this many ignores its token (see <see cref="CopierSettings.IgnoreCancellationEvery"/>); 0: none.</summary>
    public int IgnoreCancellationEvery { get; }

    /// <summary>How long the armed call goes on after the stop began, when the token does not cancel it first.</summary>
    public TimeSpan StopCall { get; }

    /// <summary>Where the armed await announces itself ("awaiting ..." and "await-ended ..."): a child process's standard output; none in memory.</summary>
    public TextWriter? Announcements { get; init; }

    /// <summary>Records handled by this copier, committed or not.</summary>
    public long Handled => Interlocked.Read(ref _handled);

    /// <summary>Completes, with the record's coordinates, when a handler has entered the armed await.</summary>
    public Task<string> AwaitingStop => _awaitingStop.Task;

    /// <summary>How the armed await ended; null until it has.</summary>
    public ArmedAwaitEnd? ArmedAwait => Volatile.Read(ref _armedAwait);

    /// <summary>The handler stops once it has handled <paramref name="records"/> more, in mid-transaction, until <see cref="Resume"/>.</summary>
    public void PauseAfter(long records)
    {
        lock (_sync)
        {
            _pauseAt = Handled + records;
            _paused ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    public void Resume()
    {
        lock (_sync)
        {
            _pauseAt = long.MaxValue;
            _paused?.TrySetResult();
            _paused = null;
        }
    }

    public Task WhilePaused(CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            return _paused is { } paused && Handled >= _pauseAt ? paused.Task.WaitAsync(cancellationToken) : Task.CompletedTask;
        }
    }

    public void Counted() => Interlocked.Increment(ref _handled);

    /// <summary>
    /// Once <paramref name="afterRecords"/> more records are handled, the next handler's call becomes the armed one:
    /// it is in flight when the harness stops the copier (the harness waits for <see cref="AwaitingStop"/> before it
    /// stops it), and it returns <see cref="StopCall"/> after the stop began, unless the handler's token cancels it
    /// first. Counted in records, not time, so that the call is armed while input remains, however fast the copy.
    /// </summary>
    public void ArmStop(long afterRecords) => Interlocked.Exchange(ref _armAt, Handled + afterRecords);

    /// <summary>The copier's host has begun stopping (its ApplicationStopping fired).</summary>
    public void StopBegan() => _stopBegun.TrySetResult();

    /// <summary>The handler's call: <see cref="Delay"/>, with the token; or, when armed, the call the stop lands in.</summary>
    public async Task CallAsync(ConsumeResult<byte[], byte[]> record, CancellationToken cancellationToken)
    {
        var armAt = Interlocked.Read(ref _armAt);
        if (Handled < armAt || Interlocked.CompareExchange(ref _armAt, long.MaxValue, armAt) != armAt)
        {
            if (IgnoreCancellationEvery > 0 && Random.Shared.Next(IgnoreCancellationEvery) == 0)
            {
                // A handler whose call ignores the token: a stop, a rebalance or a failed batch must not wait for it.
                await Task.Delay(CopierSettings.IgnoreCancellationFor, CancellationToken.None);
                return;
            }

            await Task.Delay(RandomDelay ? Delay * Random.Shared.NextDouble() : Delay, cancellationToken);
            return;
        }

        var coordinates = $"{record.Topic} [{record.Partition.Value}] @{record.Offset.Value}";
        Announcements?.WriteLine("awaiting " + coordinates);
        _awaitingStop.TrySetResult(coordinates);
        var completed = false;
        try
        {
            try
            {
                await _stopBegun.Task.WaitAsync(ArmedCallLimit, cancellationToken);
            }
            catch (TimeoutException)
            {
                // No stop came: the call returns, and the report shows that this stop did not land in an await.
            }

            await Task.Delay(StopCall, cancellationToken);
            completed = true;
        }
        finally
        {
            var end = new ArmedAwaitEnd(_stopBegun.Task.IsCompleted, !completed && cancellationToken.IsCancellationRequested);
            Volatile.Write(ref _armedAwait, end);
            Announcements?.WriteLine(end.ToLine());
        }
    }
}

/// <summary>
/// Copies each record with the same key (so an input partition's records stay together), in the shape the settings
/// name: at once (copy), after a call awaited with the token (await), or as two records around that call (split).
/// </summary>
internal sealed class CopyHandler(CopyTarget target) : ITransactionalHandler<byte[], byte[]>
{
    public ValueTask HandleAsync(ConsumeResult<byte[], byte[]> record, ITransactionScope transaction, CancellationToken cancellationToken) =>
        CopyAsync(target, record, transaction, cancellationToken);

    /// <summary>Copies one record in the target's shape; the batch handler does it for each record of its batch.</summary>
    public static async ValueTask CopyAsync(CopyTarget target, ConsumeResult<byte[], byte[]> record, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        await target.WhilePaused(cancellationToken);
        switch (target.Shape)
        {
            case HandlerShape.Await:
                await target.CallAsync(record, cancellationToken);
                Produce(target, transaction, record.Message.Key, record.Message.Value);
                break;
            case HandlerShape.Split:
                var (partition, sequence) = Parse(record.Message.Value);
                Produce(target, transaction, record.Message.Key, Encoding.UTF8.GetBytes(OutputVerifier.Value(partition, 2 * sequence)));
                await target.CallAsync(record, cancellationToken);
                Produce(target, transaction, record.Message.Key, Encoding.UTF8.GetBytes(OutputVerifier.Value(partition, (2 * sequence) + 1)));
                break;
            default:
                Produce(target, transaction, record.Message.Key, record.Message.Value);
                break;
        }

        target.Counted();
    }

    private static void Produce(CopyTarget target, ITransactionScope transaction, byte[] key, byte[] value) =>
        transaction.Produce(target.Topic, new Message<byte[], byte[]> { Key = key, Value = value });

    private static (int Partition, long Sequence) Parse(byte[] value)
    {
        var text = Encoding.UTF8.GetString(value);
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0
            || !int.TryParse(text.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var partition)
            || !long.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var sequence))
        {
            throw new FormatException($"The split handler copies input values \"partition:sequence\"; got \"{text}\".");
        }

        return (partition, sequence);
    }
}
