using System.Diagnostics;
using Confluent.Kafka;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// A handler slot's calls, one at a time: the running call's record, when it started, how it ended, and the
/// <see cref="ITransactionScope"/> it was given (<see cref="Begin"/>). The scope writes through to the unit of work only
/// while the call's transaction may take its writes: once the call has ended, or has been abandoned (it ignored its
/// cancellation and its batch aborted without it), every write is refused with an <see cref="InvalidOperationException"/>
/// naming what happened, so that a write made late can never land in the next transaction.
/// </summary>
/// <remarks>
/// <para>
/// Writes run on the handler's threads; <see cref="Begin"/>, <see cref="Close"/>, <see cref="TryAbandon"/> and the
/// collection run on the processor's thread. Closing takes the lock a write holds, so no write is half way through
/// when the call's transaction ends.
/// </para>
/// <para>
/// One object per slot, reused call after call (a call per record allocates only its scope: two references and a
/// number). A slot runs its next call only once the previous one has ended and been collected (an abandoned call keeps
/// its slot until it ends). Each call's scope carries the call's number: a scope kept past its call (by a handler that
/// wrote from a task it left running) writes with a number that is no longer the slot's, and is refused under the same
/// lock, whatever the slot runs now.
/// </para>
/// </remarks>
internal sealed class HandlerCall
{
    private const string Returned = "its call has returned";

    private readonly Lock _lock = new();
    private readonly ITransactionalUnitOfWork _unit;
    private int _generation;            // the running call's number, changed under the lock as each call begins
    private string? _closedBecause;     // why writes are refused; null while the call may write
    private bool _closed;               // closed, no write in progress (processor thread only): closing again is a no-op
    private int _offsetsBeingSent;      // SendOffsetsAsync calls in progress: closing waits for them
    private bool _ended = true;         // no call yet: the slot is free
    private IAsyncDisposable? _abandonedScope; // set once abandoned: the DI scope the call still uses, disposed when it ends
    private HandlerCallScope? _scope;

    /// <summary>A slot's calls, none begun yet.</summary>
    public HandlerCall(int slot, ITransactionalUnitOfWork unit)
    {
        Slot = slot;
        _unit = unit;
    }

    /// <summary>A slot's calls, the first begun already (its scope is <see cref="Scope"/>).</summary>
    public HandlerCall(BufferedRecord record, int slot, long startedAt, ITransactionalUnitOfWork unit)
        : this(slot, unit) => Begin(record, startedAt);

    /// <summary>The running (or last) call's record.</summary>
    public BufferedRecord Record { get; private set; }

    public int Slot { get; }

    /// <summary>When the call started (a TimeProvider timestamp).</summary>
    public long StartedAt { get; private set; }

    /// <summary>What the call threw, or null (set when it ends).</summary>
    public Exception? Error { get; private set; }

    /// <summary>Whether the batch's token had been cancelled when it threw: then the record is not at fault.</summary>
    public bool Cancelled { get; private set; }

    /// <summary>What disposing an abandoned call's DI scope threw, once it ended.</summary>
    public Exception? ScopeDisposeError { get; private set; }

    /// <summary>Whether the call was abandoned: its batch ended without it, its slot and lane wait until it ends.</summary>
    public bool Abandoned { get; private set; }

    /// <summary>The source of the abandoned call's token: disposed once the call has ended (set when abandoned).</summary>
    public CancellationTokenSource? TokenSource { get; private set; }

    /// <summary>The lock a write holds, and closing takes (see <see cref="HandlerCallScope"/>).</summary>
    internal Lock SyncRoot => _lock;

    /// <summary>The unit of work the slot's calls write through.</summary>
    internal ITransactionalUnitOfWork Unit => _unit;

    /// <summary>Counts an offsets request of the running call starting (+1) or ending (-1), under <see cref="SyncRoot"/>: closing waits for them.</summary>
    internal void OffsetsSending(int change) => _offsetsBeingSent += change;

    /// <summary>The running (or last) call's scope: what its handler writes through.</summary>
    public ITransactionScope Scope => _scope!;

    /// <summary>The slot's waits for asynchronous deserializers: a call waiting for the schema registry is not charged as an overrun.</summary>
    public SerdeWaits SerdeWaits { get; } = new();

    /// <summary>Whether the running call waits for the schema registry (its deserializer, or a ProduceAsync of its own).</summary>
    public bool AwaitsSerde => SerdeWaits.Any || _scope is { WritesPending: > 0 };

    // A ProduceAsync of this call still serializing when it returned was not awaited: if it failed later, its record
    // would go missing unseen, so returning before it is the call's failure (the batch aborts; the record is charged).
    private void ThrowIfWritesPending()
    {
        if (_scope is { WritesPending: > 0 and var running })
        {
            throw ProcessorUnitOfWork.UnawaitedWrites($"of {Record.Key}", running);
        }
    }

    /// <summary>
    /// Begins the slot's next call (processor thread; the previous one has ended and been collected): its outcome is
    /// reset, and the scope returned writes for this call only.
    /// </summary>
    public ITransactionScope Begin(BufferedRecord record, long startedAt)
    {
        lock (_lock)
        {
            Debug.Assert(_ended && _offsetsBeingSent == 0, "a slot begins a call only once its previous one has ended");
            _generation++;
            _closedBecause = null;
            _closed = false;
            _ended = false;
            _abandonedScope = null;
            Error = null;
            Cancelled = false;
            ScopeDisposeError = null;
            Abandoned = false;
            TokenSource = null;
            Record = record;
            StartedAt = startedAt;
            // The transaction the call writes into: a ProduceAsync refused because it came too late dooms it (below).
            var transaction = _unit is ISerializingUnit serializing ? serializing.Transaction : 0;
            return _scope = new HandlerCallScope(this, _generation, record.Raw, transaction);
        }
    }

    /// <summary>The call completed without awaiting anything (processor thread): its outcome is set now.</summary>
    public void EndedAtOnce(ValueTask task, Activity? activity)
    {
        try
        {
            task.GetAwaiter().GetResult();
            ThrowIfWritesPending();
            activity?.Stop();
        }
        catch (Exception e)
        {
            ProcessorTelemetry.RecordFailed(activity, e);
            Error = e;
        }

        lock (_lock)
        {
            _ended = true; // never abandoned: it ended before the processor's thread went on
            _closedBecause ??= Returned; // and closed in the same round trip, unless an offsets request is in progress
            if (_offsetsBeingSent == 0)
            {
                _closed = true;
                return;
            }
        }

        Close(Returned);
    }

    /// <summary>
    /// Awaits a call that did not complete at once: its continuation runs on the thread pool, and only reports the end
    /// to <paramref name="inFlight"/> (and disposes the call's DI scope if it was abandoned meanwhile).
    /// </summary>
    public async Task ObserveAsync(ValueTask task, Activity? activity, InFlight inFlight, CancellationToken token)
    {
        try
        {
            await task.ConfigureAwait(false);
            ThrowIfWritesPending();
            activity?.Stop();
        }
        catch (Exception e)
        {
            ProcessorTelemetry.RecordFailed(activity, e);
            Error = e;
            Cancelled = token.IsCancellationRequested;
        }

        // Ended and reported at once, under the lock TryAbandon takes: a call that ended before it could be abandoned
        // is already among the completions, so it is collected in its own batch, never in the next one.
        IAsyncDisposable? abandonedScope;
        lock (_lock)
        {
            _ended = true;
            abandonedScope = _abandonedScope;
            if (!Abandoned)
            {
                inFlight.Completed(this);
                return;
            }
        }

        if (abandonedScope is not null)
        {
            ScopeDisposeError = await AbandonedCalls.DisposeScopeAsync(abandonedScope).ConfigureAwait(false); // the call no longer uses it
        }

        inFlight.Completed(this);
    }

    /// <summary>
    /// Refuses every write from now on, for <paramref name="reason"/>; a write in progress finishes first (processor thread).
    /// </summary>
    public void Close(string reason = Returned)
    {
        while (!_closed)
        {
            lock (_lock)
            {
                _closedBecause ??= reason;
                if (_offsetsBeingSent == 0)
                {
                    _closed = true;
                    return;
                }
            }

            Thread.Sleep(1); // an offsets request of a call that is being abandoned: rare, and bounded by its own timeout
        }
    }

    /// <summary>
    /// Abandons the call, unless it has ended meanwhile: it keeps <paramref name="scope"/> (its DI scope, taken from
    /// the batch) and disposes it when it ends (processor thread).
    /// </summary>
    /// <returns>Whether the call was still running, and so is abandoned.</returns>
    public bool TryAbandon(Func<IAsyncDisposable?> scope, CancellationTokenSource? tokenSource)
    {
        lock (_lock)
        {
            if (_ended)
            {
                return false;
            }

            _abandonedScope = scope();
            TokenSource = tokenSource;
            Abandoned = true;
            return true;
        }
    }

    internal void ThrowIfClosed(int generation, ConsumeResult<byte[]?, byte[]?> raw)
    {
        if (ClosedBecause(generation) is { } reason)
        {
            throw Refusal(reason, raw);
        }
    }

    /// <summary>
    /// Why a call's writes are refused, or null while it may write (under the lock). A scope of an earlier call of the
    /// slot is refused: that call has ended (the slot began another only then).
    /// </summary>
    internal string? ClosedBecause(int generation) => generation == _generation ? _closedBecause : Returned;

    internal bool IsClosed(int generation)
    {
        lock (_lock) { return ClosedBecause(generation) is not null; }
    }

    internal InvalidOperationException Refusal(string reason, ConsumeResult<byte[]?, byte[]?> raw) => new(
        $"The handler call for {RecordKey.Of(raw)} cannot write to the transaction of '{_unit.TransactionalId}': {reason}. " +
        "A write made after its call has returned or its batch has ended would land in another transaction; write only from within the call, before it returns.");
}
