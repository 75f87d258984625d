using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Verification;

namespace KafkaTx.Reliability.Crash;

/// <summary>Where the copiers run and the topics live: the in-memory Kafka inside this process, or a real broker.</summary>
internal interface ICopierBackend : IAsyncDisposable
{
    string Description { get; }

    /// <summary>Creates the topics (if the backend needs it) with this many partitions.</summary>
    Task CreateTopicsAsync(int partitions, params string[] topics);

    /// <summary>
    /// Writes sequences [first, first + count) to every input partition, outside any transaction, keyed with
    /// <paramref name="keys"/> keys per partition (see <see cref="OutputVerifier.Key(int, long, int)"/>).
    /// </summary>
    void Seed(string topic, int partitions, long first, int count, int keys = 1);

    /// <summary>Starts an incarnation of the copier instance.</summary>
    Task<ICopier> StartCopierAsync(CopierSettings settings);

    /// <summary>Feeds the output records not read yet, in order, to the verifier (read_committed).</summary>
    void ReadNewOutput(string topic, OutputVerifier verifier);

    /// <summary>The group's committed offset and the end offset of each input partition.</summary>
    IReadOnlyDictionary<int, (long Committed, long End)> Progress(string input, string group);

    /// <summary>Deletes what has been copied and verified, so that a long run keeps a flat memory; where the backend can.</summary>
    void DeleteBefore(string topic, IReadOnlyDictionary<int, long> offsets);

    /// <summary>Where the output reader stands, per output partition.</summary>
    IReadOnlyDictionary<int, long> OutputPositions(string topic);
}

internal static class CopierBackendExtensions
{
    /// <summary>Whether the group has committed every input partition up to its end: the copy is complete.</summary>
    public static bool HasCopiedAll(this ICopierBackend backend, string input, string group) =>
        backend.Progress(input, group).Values.All(p => p.Committed >= p.End);
}

/// <summary>One incarnation of a copier: a child process, or an application inside this process.</summary>
internal interface ICopier : IAsyncDisposable
{
    /// <summary>Input records whose copies this incarnation has committed.</summary>
    long CommittedRecords { get; }

    /// <summary>Input records this incarnation has handled, in committed or open transactions (where it knows them; else committed).</summary>
    long HandledRecords { get; }

    DateTime StartedAt { get; }

    /// <summary>When this incarnation committed for the first time.</summary>
    DateTime? FirstCommitAt { get; }

    /// <summary>Whether it has stopped by itself (its processor stopped the application).</summary>
    bool HasStopped { get; }

    /// <summary>SIGKILL: no abort, no leaving the group, nothing flushed.</summary>
    Task KillAsync();

    /// <summary>SIGSTOP, in mid-transaction.</summary>
    void Pause();

    /// <summary>SIGCONT.</summary>
    void Resume();

    /// <summary>Waits for the incarnation to end by itself: its processor's final state, and the exit code it set.</summary>
    Task<CopierEnd> WaitForEndAsync(TimeSpan deadline);

    /// <summary>Stops it the orderly way.</summary>
    Task StopAsync();

    /// <summary>Arms the handler's call after <paramref name="afterRecords"/> more records (see <see cref="Copying.CopyTarget.ArmStop"/>).</summary>
    void ArmStop(long afterRecords);

    /// <summary>
    /// Waits until a handler has entered the armed call, so that a stop sent now lands while that handler awaits
    /// with its token. Returns the record's coordinates.
    /// </summary>
    Task<string> WaitForArmedCallAsync(TimeSpan deadline);

    /// <summary>How the armed await ended; null until it has (or when nothing was armed).</summary>
    Copying.ArmedAwaitEnd? ArmedAwait { get; }
}

internal sealed record CopierEnd(string State, int ExitCode);
