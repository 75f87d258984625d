using Confluent.Kafka;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// The unit's state and the owner of its gate (and so of the open transaction), each one value, read lock-free by any
/// thread. Every move is checked against <see cref="TransactionTransitions.CanMove"/>: a move the table does not allow
/// is a bug in KafkaTx and throws.
/// </summary>
/// <remarks>
/// The state is changed only by the holder of the gate, except for the terminal states, which any thread may enter
/// (a disposal that gave up waiting for the call in flight, say): a move out of Fenced or Disposed is ignored, and
/// out of Faulted only Uninitialized (a reset) or Fenced is taken.
/// </remarks>
internal sealed class TransactionLifecycle(ILogger logger, string transactionalId)
{
    private int _state;
    private int _owner;
    private EndedBy? _endedBy;

    public TransactionState State => (TransactionState)Volatile.Read(ref _state);

    public TransactionOwner Owner => (TransactionOwner)Volatile.Read(ref _owner);

    /// <summary>Moves to <paramref name="next"/>, logging the change; a move out of a terminal state is ignored.</summary>
    public void TransitionTo(TransactionState next) => Move(next, log: true);

    /// <summary>
    /// Moves to Fenced or Faulted and keeps the error that caused it, which every later refusal carries; the first
    /// error that ends the unit in a state is kept (a later one of the same state does not replace it).
    /// </summary>
    public void End(TransactionState terminal, Error cause)
    {
        Move(terminal, log: true);
        if (State == terminal && Volatile.Read(ref _endedBy)?.State != terminal)
        {
            Volatile.Write(ref _endedBy, new EndedBy(terminal, cause));
        }
    }

    /// <summary>The error that moved the unit to <paramref name="state"/> (Fenced or Faulted), when it is in that state.</summary>
    public Error? CauseOf(TransactionState state) => Volatile.Read(ref _endedBy) is { } ended && ended.State == state ? ended.Cause : null;

    /// <summary>ResetAsync's move to Uninitialized: the reset itself is logged, not the state change.</summary>
    public void ResetToUninitialized() => Move(TransactionState.Uninitialized, log: false);

    /// <summary>Disposed, from whatever state: disposal is legal in every state, terminal ones included.</summary>
    public void EnterDisposed() => Interlocked.Exchange(ref _state, (int)TransactionState.Disposed);

    /// <summary>The caller holds the gate now: an explicit transaction's owner, or an ExecuteAsync call.</summary>
    public void Own(TransactionOwner owner) => Volatile.Write(ref _owner, (int)owner);

    /// <summary>Gives the gate's ownership up; the caller releases the gate itself.</summary>
    public void Disown() => Volatile.Write(ref _owner, (int)TransactionOwner.None);

    private void Move(TransactionState next, bool log)
    {
        while (true)
        {
            var current = (TransactionState)Volatile.Read(ref _state);
            if (current is TransactionState.Fenced or TransactionState.Disposed)
            {
                return; // terminal states are never left
            }

            if (current is TransactionState.Faulted && next is not (TransactionState.Uninitialized or TransactionState.Fenced))
            {
                // Another thread's fatal error (a Produce racing the commit, say) ended the unit under the call that
                // moves now: the unit stays Faulted, and only a reset (or a replacement's Uninitialized) leaves it.
                return;
            }

            if (!TransactionTransitions.CanMove(current, next))
            {
                throw new InvalidOperationException($"The unit of work for '{transactionalId}' may not move from {current} to {next}; this is a bug in KafkaTx.");
            }

            if (Interlocked.CompareExchange(ref _state, (int)next, (int)current) == (int)current)
            {
                if (current == TransactionState.Faulted && next != current)
                {
                    Volatile.Write(ref _endedBy, null); // left by a reset or a replacement: a later fault is a new one
                }

                if (log && current != next)
                {
                    Log.StateChanged(logger, transactionalId, current, next);
                }

                return;
            }
        }
    }

    private sealed record EndedBy(TransactionState State, Error Cause);
}
