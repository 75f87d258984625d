using Confluent.Kafka;
using static KafkaTx.TransactionState;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// The unit of work's state machine in one place: for every state and every call, the states the call may leave the
/// unit in, or why it is refused; and the single moves (<see cref="CanMove"/>) the calls are made of. The refusal
/// messages the unit throws are built here and nowhere else. docs/state-machine.md holds the same table (a test
/// compares the two).
/// </summary>
/// <remarks>
/// Besides the state, three guards refuse a call whatever the table says: a BeginTransaction while the gate is held
/// (another transaction open, or another call running: <see cref="Busy"/>), a CommitAsync or AbortAsync inside
/// ExecuteAsync's work (<see cref="InsideExecute"/>), and a second explicit call while one runs
/// (<see cref="ExplicitCallRunning"/>). Disposal refuses every call once it has begun (<see cref="Disposing"/>).
/// </remarks>
internal static class TransactionTransitions
{
    /// <summary>What may be done while a commit's outcome is unknown; every call named works in that state.</summary>
    public const string PendingCommitNextStep =
        "A commit's outcome is unknown and not settled yet. ExecuteAsync and InitializeAsync settle it on their own before anything else: they resume the commit and, if its outcome is still unknown, replace the producer, whose InitTransactions completes or aborts it. CommitAsync resumes it and reports its outcome; ResetAsync replaces the producer at once.";

    /// <summary>A race, not a cell of the table: CommitAsync waited for the gate while another call settled the commit.</summary>
    public const string SettledMeanwhile = "The commit whose outcome was unknown was settled meanwhile by another call (its outcome is in the log); no transaction is open.";

    public const string OpenHealthyTransaction = "A transaction is open and the producer is healthy: abort it instead.";

    private static readonly TransactionState[] AfterInitialize = [Ready, Uninitialized, Faulted, Fenced];
    private static readonly TransactionState[] AfterBegin = [InTransaction, Uninitialized, Faulted, Fenced];
    private static readonly TransactionState[] InTransactionAfterWrite = [InTransaction, Faulted, Fenced];
    private static readonly TransactionState[] AfterCommit = [Ready, Committing, InTransaction, Aborting, Uninitialized, Faulted, Fenced];
    private static readonly TransactionState[] AfterResumedCommit = [Ready, Committing, Aborting, Uninitialized, Faulted, Fenced];
    private static readonly TransactionState[] AfterAbort = [Ready, Aborting, Uninitialized, Faulted, Fenced];
    private static readonly TransactionState[] AfterSettling = [Ready, Aborting, Uninitialized, Faulted, Fenced];
    private static readonly TransactionState[] AfterExecute = [Ready, Committing, Aborting, Uninitialized, Faulted, Fenced];
    private static readonly TransactionState[] AfterReset = [Uninitialized];
    private static readonly TransactionState[] AfterDispose = [Disposed];

    /// <summary>The row of the table for one state and one call.</summary>
    public static Transition For(TransactionState state, TransactionCall call) => (state, call) switch
    {
        (_, TransactionCall.Dispose) => Transition.To(AfterDispose), // in every state, terminal ones included
        (Disposed or Fenced, _) => Transition.Terminal,
        (Faulted, TransactionCall.Reset) => Transition.To(AfterReset),
        (Faulted, _) => Transition.Terminal,

        (Uninitialized or Initializing, TransactionCall.Initialize) => Transition.To(AfterInitialize),
        (Committing, TransactionCall.Initialize) => Transition.To(AfterSettling),
        (_, TransactionCall.Initialize) => Transition.To([state]), // already initialized: returns at once

        (Ready, TransactionCall.Begin) => Transition.To(AfterBegin),
        (Initializing or InTransaction, TransactionCall.Begin) => Transition.Busy, // the gate is held
        (_, TransactionCall.Begin) => Transition.Refused(NextStep(state)),

        (InTransaction, TransactionCall.Produce) => Transition.To(InTransactionAfterWrite),
        (Ready, TransactionCall.Produce) => Transition.Refused("Records can only be written inside a transaction: call BeginTransaction, or use ExecuteAsync."),
        (_, TransactionCall.Produce) => Transition.Refused("Records can only be written inside a transaction. " + NextStep(state)),

        (InTransaction, TransactionCall.SendOffsets) => Transition.To(InTransactionAfterWrite),
        (_, TransactionCall.SendOffsets) => Transition.Refused("Offsets can only be sent inside a transaction. " + NextStep(state)),

        (InTransaction, TransactionCall.Commit) => Transition.To(AfterCommit), // the explicit transaction's owner
        (Committing, TransactionCall.Commit) => Transition.To(AfterResumedCommit), // any caller: resumes the commit
        (Ready, TransactionCall.Commit) => Transition.Refused("No transaction is open: call BeginTransaction first."),
        (_, TransactionCall.Commit) => Transition.Refused(NextStep(state)),

        (InTransaction or Aborting, TransactionCall.Abort) => Transition.To(AfterAbort),
        (Ready, TransactionCall.Abort) => Transition.Refused("No transaction is open."),
        (Committing, TransactionCall.Abort) => Transition.Refused("A commit that was sent cannot be aborted. " + NextStep(state)),
        (_, TransactionCall.Abort) => Transition.Refused(NextStep(state)),

        (InTransaction, TransactionCall.Reset) => Transition.Refused(OpenHealthyTransaction), // unless its producer broke
        (_, TransactionCall.Reset) => Transition.To(AfterReset),

        (_, TransactionCall.Execute) => Transition.To(AfterExecute), // queues behind an open transaction

        _ => throw new ArgumentOutOfRangeException(nameof(call), call, "Not a call of the unit of work."),
    };

    /// <summary>
    /// Whether the unit may move from one state to the next in one step. Staying is always allowed; Fenced and Disposed
    /// are never left (a move from them is ignored, not refused: disposal may end the unit under a running call).
    /// </summary>
    public static bool CanMove(TransactionState from, TransactionState to) => from == to || (from, to) switch
    {
        (_, Disposed) => true,
        (Disposed, _) => false,
        (Fenced, _) => false,
        (_, Fenced or Faulted) => true,
        (Uninitialized, Initializing) => true,
        (Initializing, Ready or Uninitialized) => true,
        (Ready, InTransaction or Uninitialized) => true,
        (InTransaction, Committing or Aborting or Uninitialized) => true,
        (Committing, Ready or Aborting or Uninitialized) => true,
        (Aborting, Ready or Uninitialized) => true,
        (Faulted, Uninitialized) => true,
        _ => false,
    };

    /// <summary>What may be done in a state where the call made is refused: only calls that work in that state.</summary>
    public static string NextStep(TransactionState state) => state switch
    {
        Uninitialized => "Call InitializeAsync first (ExecuteAsync initializes on its own).",
        Initializing => "InitializeAsync is running: wait for it (ExecuteAsync waits on its own).",
        Ready => "No transaction is open: call BeginTransaction, or use ExecuteAsync.",
        InTransaction => "A transaction is open: commit or abort it (ExecuteAsync queues behind it).",
        Committing => PendingCommitNextStep,
        Aborting => "An abort did not complete: AbortAsync resumes it, and ExecuteAsync resumes it before its own transaction.",
        _ => string.Empty,
    };

    /// <summary>
    /// The exception that refuses <paramref name="call"/> in <paramref name="state"/>, as the table says: a
    /// <see cref="KafkaTransactionException"/> when the unit was fenced or faulted (<paramref name="endedBy"/> is the
    /// error that did it), an <see cref="InvalidOperationException"/> for a call made in the wrong state.
    /// </summary>
    public static Exception Refusal(TransactionCall call, TransactionState state, string transactionalId, Error? endedBy)
    {
        var transition = For(state, call);
        return transition.Kind switch
        {
            TransitionKind.Terminal => TerminalRefusal(Operation(call), state, transactionalId, endedBy)
                ?? throw new InvalidOperationException($"{state} is not terminal; this is a bug in KafkaTx."),
            TransitionKind.Busy => Busy(state, transactionalId),
            TransitionKind.Refused => InvalidState(Operation(call), state, transactionalId, transition.Refusal),

            // Accepted by the table but refused by the code: a guard or a race (the state changed while the call waited).
            _ => InvalidState(Operation(call), state, transactionalId, NextStep(state)),
        };
    }

    /// <summary>
    /// The refusal of any call in a terminal state (ResetAsync is legal in Faulted); null when there is none. Fenced and
    /// Faulted are not the caller's misuse but Kafka's verdict, so their refusal is typed: a
    /// <see cref="KafkaTransactionException"/> of kind Fenced or Fatal carrying the error that ended the unit
    /// (<paramref name="endedBy"/>), so that a handler that maps kinds needs no look at the state.
    /// </summary>
    public static Exception? TerminalRefusal(string operation, TransactionState state, string transactionalId, Error? endedBy)
    {
        switch (state)
        {
            case Disposed:
                return new ObjectDisposedException(nameof(TransactionalUnitOfWork), $"{operation} is not valid in state Disposed: the unit of work for '{transactionalId}' has been disposed.");
            case Fenced:
                var fencedBy = endedBy ?? new Error(ErrorCode.Local_Fenced, "fenced");
                return new KafkaTransactionException(TransactionErrorKind.Fenced, fencedBy,
                    $"{operation} is not valid in state Fenced: producer '{transactionalId}' was fenced by a newer instance with the same transactional.id ({fencedBy.Code}: {fencedBy.Reason}) and has stopped; nothing can be sent from this instance. Never retry: replace this instance (stop it). " +
                    "If no restart of this instance explains it, two instances share one transactional.id: give each a unique, stable InstanceId (docs/transactional-id.md).",
                    state) { TransactionalId = transactionalId };
            case Faulted when operation != nameof(ITransactionalUnitOfWork.ResetAsync):
                var faultedBy = endedBy ?? new Error(ErrorCode.Local_Fatal, "fatal error");
                return new KafkaTransactionException(TransactionErrorKind.Fatal, faultedBy,
                    $"{operation} is not valid in state Faulted: producer '{transactionalId}' hit a fatal error ({faultedBy.Code}: {faultedBy.Reason}) and can no longer be used. Fix the cause (it was logged when it happened), then call ResetAsync to replace the producer, or restart the instance.",
                    state) { TransactionalId = transactionalId };
            default:
                return null;
        }
    }

    public static InvalidOperationException InvalidState(string operation, TransactionState state, string transactionalId, string? hint) =>
        new($"{operation} is not valid in state {state} (transactional.id '{transactionalId}').{(hint is null ? string.Empty : " " + hint)}");

    /// <summary>Guard: BeginTransaction while the gate is held.</summary>
    public static InvalidOperationException Busy(TransactionState state, string transactionalId) => new(
        $"BeginTransaction cannot open a transaction now (state {state}): '{transactionalId}' already has one open or a call running, and a unit of work runs one transaction at a time. " +
        "To run transactions from concurrent callers, use ExecuteAsync, which queues them, or give each concurrent flow its own unit (AddUnitOfWorkPool, or another producer with its own transactional.id). " +
        "If a transactional processor is registered on this producer's builder, it runs its own transactions on this producer: register another producer for the other writers, with AddKafkaTransactions(\"web\", ...).");

    /// <summary>Guard: CommitAsync or AbortAsync inside ExecuteAsync's work.</summary>
    public static InvalidOperationException InsideExecute(string operation, TransactionState state) => new(
        $"{operation} is not valid inside ExecuteAsync (state {state}): ExecuteAsync commits or aborts its own transaction. Return from the work to commit, or throw to abort.");

    /// <summary>Guard: an explicit call while another runs.</summary>
    public static InvalidOperationException ExplicitCallRunning(string operation, string running, TransactionState state, string transactionalId) => new(
        $"{operation} is not valid while {running} of '{transactionalId}' is running (state {state}): the explicit calls of a transaction are for one owner, one call at a time. Await {running} first.");

    /// <summary>Guard: any call once disposal has begun.</summary>
    public static ObjectDisposedException Disposing(string operation, TransactionState state, string transactionalId) =>
        new(nameof(TransactionalUnitOfWork), state == Disposed
            ? $"{operation} is not valid in state Disposed: the unit of work for '{transactionalId}' has been disposed."
            : $"{operation} is refused: the unit of work for '{transactionalId}' is being disposed (state Disposed once the calls in flight end).");

    /// <summary>The name the messages give a call: the public method's.</summary>
    public static string Operation(TransactionCall call) => call switch
    {
        TransactionCall.Initialize => nameof(ITransactionalUnitOfWork.InitializeAsync),
        TransactionCall.Begin => nameof(ITransactionalUnitOfWork.BeginTransaction),
        TransactionCall.Produce => nameof(ITransactionScope.Produce),
        TransactionCall.SendOffsets => nameof(ITransactionScope.SendOffsetsAsync),
        TransactionCall.Commit => nameof(ITransactionalUnitOfWork.CommitAsync),
        TransactionCall.Abort => nameof(ITransactionalUnitOfWork.AbortAsync),
        TransactionCall.Reset => nameof(ITransactionalUnitOfWork.ResetAsync),
        TransactionCall.Execute => nameof(ITransactionalUnitOfWork.ExecuteAsync),
        _ => nameof(IDisposable.Dispose),
    };
}

internal enum TransitionKind
{
    Accepted,
    Refused,
    Busy,
    Terminal,
}

/// <summary>One cell of <see cref="TransactionTransitions"/>: accepted (with the states the call may end in) or refused.</summary>
internal readonly record struct Transition(TransitionKind Kind, TransactionState[] EndsIn, string? Refusal)
{
    public static readonly Transition Terminal = new(TransitionKind.Terminal, [], null);

    public static readonly Transition Busy = new(TransitionKind.Busy, [], null);

    public bool IsAccepted => Kind == TransitionKind.Accepted;

    public static Transition To(TransactionState[] endsIn) => new(TransitionKind.Accepted, endsIn, null);

    public static Transition Refused(string hint) => new(TransitionKind.Refused, [], hint);
}
