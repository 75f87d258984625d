using System.Diagnostics;
using System.Runtime.CompilerServices;
using Confluent.Kafka;

namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// The open batch's concurrent handler calls: starts them (each in a handler slot of its own, on the thread pool, with
/// the batch's token), collects their completions on the processor's thread, and remembers what the batch dispatched
/// (how many, and per partition the highest offset: the commit barrier fills the holes below it) and what failed.
/// </summary>
/// <remarks>Used on the processor's thread (or while it is blocked in a rebalance callback waiting for this work).</remarks>
internal sealed class HandlerDispatch<TKey, TValue>(
    TransactionalProcessorOptions options,
    ITransactionalUnitOfWork unit,
    ProcessorUnitOfWork unitCalls,
    RecordAttempts attempts,
    PoisonRecords poison,
    Type handlerType,
    RecordDeserializer<TKey, TValue> deserializer,
    LaneQueues buffer,
    ProcessorTelemetry telemetry,
    TimeProvider time)
{
    private readonly Stack<int> _freeSlots = new(Enumerable.Range(0, options.MaxConcurrency).Reverse());
    private readonly HandlerCall?[] _slotCalls = new HandlerCall?[options.MaxConcurrency]; // each slot's, reused call after call
    private readonly Dictionary<(string Topic, int Partition), StrongBox<long>> _highestDispatched = [];
    private RecordKey? _lastFrom; // a record of the partition last dispatched from, whose highest offset is _lastHighest: the next record is most often of it
    private StrongBox<long>? _lastHighest;
    private readonly List<(BufferedRecord Record, Exception Error)> _failures = [];
    private CancellationTokenSource? _batchCancellation;
    private readonly BatchCap _cap = new();
    private readonly AbandonedCalls _abandon = new(telemetry, time);

    public InFlight InFlight { get; } = new();

    /// <summary>Records dispatched in the open batch (handled, in flight, failed, or dead-lettered).</summary>
    public int Dispatched { get; private set; }

    /// <summary>The last record dispatched in the open batch.</summary>
    public RecordKey? LastDispatched { get; private set; }

    /// <summary>Records whose handler threw in the open batch (not counting calls cancelled by the batch).</summary>
    public IReadOnlyList<(BufferedRecord Record, Exception Error)> Failures => _failures;

    /// <summary>A handler call ended cancelled: its record is not handled, so the batch must abort (nobody is at fault).</summary>
    public bool Incomplete { get; private set; }

    /// <summary>Whether the batch can no longer commit: a record failed or a call was cancelled.</summary>
    public bool Broken => _failures.Count > 0 || Incomplete || TransactionFailure is not null || PoisonStop is not null;

    /// <summary>Writing a poison record to the dead-letter topic failed for the transaction's sake (not the record's).</summary>
    public KafkaTransactionException? TransactionFailure { get; private set; }

    /// <summary>A poison record met the Stop policy: the failure the processor stops with.</summary>
    public Exception? PoisonStop { get; private set; }

    /// <summary>Whether there is a free handler slot.</summary>
    public bool HasFreeSlot => _freeSlots.Count > 0;

    /// <summary>A record the barrier must still dispatch: it lies below a record of its partition already dispatched.</summary>
    public bool IsHole(BufferedRecord record) =>
        _highestDispatched.TryGetValue(record.Key.Where, out var highest) && record.Key.Offset < highest.Value;

    /// <summary>
    /// Dispatches the record in the open batch: a poison record (MaxAttempts failures) meets its policy here, on the
    /// processor's thread; any other starts its handler call.
    /// </summary>
    /// <returns>Whether a handler call is still running for it (one that completed at once has released its lane).</returns>
    public bool Dispatch(OpenBatch<TKey, TValue> batch, BufferedRecord record, CancellationToken drainToken) =>
        Dispatch(batch, record, time.GetTimestamp(), drainToken);

    /// <summary>Dispatches the record, <paramref name="now"/> being the clock the caller has just read (the call's start).</summary>
    public bool Dispatch(OpenBatch<TKey, TValue> batch, BufferedRecord record, long now, CancellationToken drainToken)
    {
        Dispatching(record.Key);
        telemetry.RecordTaken();
        var failure = attempts.Of(record.Key);
        if (!poison.IsPoison(failure))
        {
            return Start(batch, record, now, drainToken);
        }

        try
        {
            PoisonStop = poison.Apply(record.Raw, record.Key, failure!, batch);
        }
        catch (KafkaTransactionException e) when (unitCalls.IsTransactionFailure(e))
        {
            TransactionFailure = e;
        }

        buffer.Release(record.Lane);
        return false;
    }

    /// <summary>Counts the record as the batch's (before it is handled or dead-lettered).</summary>
    private void Dispatching(RecordKey key)
    {
        Dispatched++;
        LastDispatched = key;
        if (_lastHighest is null || _lastFrom is not { } last || !key.IsIn(last.Topic, last.Partition))
        {
            if (!_highestDispatched.TryGetValue(key.Where, out _lastHighest))
            {
                _lastHighest = new StrongBox<long>(key.Offset);
                _highestDispatched.Add(key.Where, _lastHighest);
            }

            _lastFrom = key;
        }

        if (_lastHighest.Value < key.Offset)
        {
            _lastHighest.Value = key.Offset;
        }
    }

    /// <summary>A record failed before any handler call (its deserializer threw).</summary>
    public void Failed(BufferedRecord record, Exception error)
    {
        _failures.Add((record, error));
        buffer.Release(record.Lane);
    }

    /// <summary>
    /// Starts the record's handler call: deserialized here, on the processor's thread; the handler of a free slot,
    /// resolved from that slot's scope; the batch's token (the drain's, cancelled too when the batch aborts or
    /// overruns); the record's span current in the call. The call runs here, without the processor's context, up to
    /// its first await that does not complete at once (as with MaxConcurrency 1), then on the thread pool.
    /// </summary>
    /// <returns>Whether the call is still running.</returns>
    private bool Start(OpenBatch<TKey, TValue> batch, BufferedRecord record, long startedAt, CancellationToken drainToken)
    {
        ValueTask<ConsumeResult<TKey, TValue>> typed; // an asynchronous deserializer is awaited within the call
        try
        {
            typed = deserializer.DeserializeAsync(record.Raw, batch.StartedAt, BatchToken(drainToken));
        }
        catch (Exception e)
        {
            Failed(record, e);
            return false;
        }

        var slot = _freeSlots.Pop();
        ITransactionalHandler<TKey, TValue> handler;
        try
        {
            handler = batch.HandlerForSlot(slot, options.MaxConcurrency, handlerType);
        }
        catch
        {
            _freeSlots.Push(slot);
            throw; // the handler cannot be built: as when the batch's own cannot, the processor stops
        }

        var token = BatchToken(drainToken);
        var call = _slotCalls[slot] ??= new HandlerCall(slot, unit);
        var scope = call.Begin(record, startedAt);
        var previous = Activity.Current;
        var activity = telemetry.StartRecord(record.Raw, batch.Activity); // current in the call
        ValueTask task;
        try
        {
            using (ProcessorThread.WithoutContext())
            {
                task = typed.IsCompletedSuccessfully ? handler.HandleAsync(typed.Result, scope, token) : RecordDeserializer<TKey, TValue>.ThenHandleAsync(call.SerdeWaits.AwaitAsync(typed), handler, scope, token);
            }
        }
        catch (Exception e)
        {
            task = ValueTask.FromException(e);
        }

        if (task.IsCompleted)
        {
            // Done without awaiting anything (a handler that only transforms): no thread hop, no queue.
            Activity.Current = previous;
            call.EndedAtOnce(task, activity);
            Ended(batch, call, token);
            return false;
        }

        InFlight.Started(call);
        Activity.Current = previous;
        _ = call.ObserveAsync(task, activity, InFlight, token);
        return true;
    }

    /// <summary>The token of the open batch's calls and of its transaction: the drain's, cancelled too when the batch aborts.</summary>
    public CancellationToken BatchToken(CancellationToken drainToken) =>
        (_batchCancellation ??= CancellationTokenSource.CreateLinkedTokenSource(drainToken)).Token;

    /// <summary>Collects the completions reported so far: handled records join the batch, their lanes move on.</summary>
    public void Collect(OpenBatch<TKey, TValue>? batch)
    {
        while (InFlight.TryCollect(out var call))
        {
            Ended(batch, call, default);
        }
    }

    /// <summary>The calls in flight ran past the transaction's timeout: their records are charged (their cancellation is theirs).</summary>
    public void Overran(TimeSpan transactionTimeout)
    {
        // Only a call that ran half the transaction's timeout on its own is at fault. A call that started late (a record
        // waiting behind a slow one of its key, say) is not: the batch was too long, so the next ones are shorter. Nor
        // is one waiting for the schema registry: an outage, however long, never makes a record poison.
        var charged = false;
        var now = time.GetTimestamp();
        foreach (var call in InFlight.Calls)
        {
            if (time.GetElapsedTime(call.StartedAt, now) >= transactionTimeout / 2 && !call.AwaitsSerde)
            {
                charged = true;
                _failures.Add((call.Record, new TimeoutException($"The handler of {call.Record.Key} was still running when the transaction neared its timeout ({transactionTimeout.TotalMilliseconds} ms); it was cancelled.")));
            }
        }

        if (!charged)
        {
            _cap.OverranUncharged(Dispatched);
        }
    }

    /// <summary>The most records a batch dispatches (see <see cref="Concurrent.BatchCap"/>).</summary>
    public int BatchCap => _cap.Value;

    /// <summary>Cancels the batch's handler calls: it aborts, or they overran their bound.</summary>
    public void CancelCalls()
    {
        using (ProcessorThread.WithoutContext()) // the handlers' cancellation callbacks run in Cancel
        {
            _batchCancellation?.Cancel();
        }
    }

    /// <summary>
    /// Cancels the batch's handler calls and waits for them, at most <paramref name="bound"/>: a call still running
    /// then ignores its token, and is abandoned (see <see cref="AbandonedCalls"/>): the batch is incomplete and aborts.
    /// </summary>
    /// <param name="batch">The open batch.</param>
    /// <param name="why">Why the calls are stopped, for the log and for a late write's refusal.</param>
    /// <param name="bound">How long cancelled calls are waited for: ShutdownTimeout unless given.</param>
    public async Task StopCallsAsync(OpenBatch<TKey, TValue>? batch, string why, TimeSpan? bound = null)
    {
        var limit = bound ?? options.ShutdownTimeout;
        CancelCalls();
        var started = time.GetTimestamp();
        Collect(batch);
        while (InFlight.Count > 0)
        {
            var remaining = limit - time.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                if (_abandon.Abandon(batch, InFlight, why, limit, _batchCancellation) > 0)
                {
                    Incomplete = true;
                }

                Collect(batch); // the calls that ended before they could be abandoned: every one has reported already
                Debug.Assert(InFlight.Count == 0, "a call not abandoned has ended and reported its end");
                return;
            }

            await InFlight.WaitAsync(remaining < BatchSchedule.IdlePoll ? remaining : BatchSchedule.IdlePoll).ConfigureAwait(true);
            Collect(batch);
        }
    }

    /// <summary>A record the batch needs cannot be handled in it (it waits behind an abandoned call): it must abort.</summary>
    public void MarkIncomplete() => Incomplete = true;

    /// <summary>
    /// The batch ended (committed or aborted): the next one starts afresh. A second call before anything of a next
    /// batch happened (a failure path and the stop both ending it) is a no-op: it would double back a halved BatchCap.
    /// </summary>
    public void BatchEnded()
    {
        Debug.Assert(InFlight.Count == 0, "a batch ends only once its handler calls have");
        if (_batchCancellation is null && Dispatched == 0)
        {
            return; // ended already, and nothing of a next batch has happened (each begins with its token or a dispatch)
        }

        _cap.BatchEnded();
        Dispatched = 0;
        LastDispatched = null;
        _highestDispatched.Clear();
        _lastFrom = null;
        _lastHighest = null;
        _failures.Clear();
        Incomplete = false;
        TransactionFailure = null;
        PoisonStop = null;
        if (_batchCancellation is { } source && !_abandon.StillUse(source))
        {
            source.Dispose(); // else an abandoned call still reads its token: disposed when the last of them ends
        }

        _batchCancellation = null;
    }

    /// <summary>A call ended: its slot and lane are free; its record joins the batch, or counts as failed or cancelled.</summary>
    private void Ended(OpenBatch<TKey, TValue>? batch, HandlerCall call, CancellationToken token)
    {
        _freeSlots.Push(call.Slot);
        buffer.Release(call.Record.Lane);
        if (call.Abandoned)
        {
            _abandon.Ended(call, _batchCancellation); // its batch ended long ago: it only gives back its slot and lane
            return;
        }

        call.Close(); // no-op for a call that completed at once: closed as it ended
        if (call.Error is null)
        {
            batch?.AddHandled(call.Record.Key);
            telemetry.RecordHandled();
        }
        else if (call.Cancelled || token.IsCancellationRequested)
        {
            Incomplete = true;
        }
        else if (!IsFailed(call.Record.Key))
        {
            // Not twice: a call charged for overrunning the bound may still end with an error of its own.
            _failures.Add((call.Record, call.Error));
        }
    }

    // A loop, not a lambda: a lambda capturing the call would allocate its closure at every call's end, failed or not.
    private bool IsFailed(RecordKey key)
    {
        foreach (var (record, _) in _failures)
        {
            if (record.Key == key)
            {
                return true;
            }
        }

        return false;
    }
}
