namespace KafkaTx.UnitOfWork;

/// <summary>
/// The checks every public call makes before it does anything: disposal begun, another explicit call running, a call
/// made inside ExecuteAsync that only its owner may make, and the state (<see cref="TransactionTransitions"/>).
/// </summary>
internal sealed class CallGuards(UnitParts unit)
{
    /// <summary>Counts a call as in flight, or refuses it: once Dispose has begun, or while another explicit call runs.</summary>
    public void Enter(TransactionCall call, bool explicitCall = false)
    {
        var operation = TransactionTransitions.Operation(call);
        if (unit.Calls.TryEnter(operation, explicitCall, out var disposing) is { } running)
        {
            throw TransactionTransitions.ExplicitCallRunning(operation, running, unit.State, unit.TransactionalId);
        }

        if (disposing)
        {
            throw TransactionTransitions.Disposing(operation, unit.State, unit.TransactionalId);
        }
    }

    /// <summary>Refuses a call before it waits for its turn, once Dispose has begun.</summary>
    public void ThrowIfDisposing(TransactionCall call)
    {
        if (unit.Calls.IsDisposing)
        {
            throw TransactionTransitions.Disposing(TransactionTransitions.Operation(call), unit.State, unit.TransactionalId);
        }
    }

    public void ThrowIfOwnedByExecute(TransactionCall call)
    {
        if (unit.Lifecycle.Owner == TransactionOwner.Execute)
        {
            throw TransactionTransitions.InsideExecute(TransactionTransitions.Operation(call), unit.State);
        }
    }

    public void ThrowIfTerminal(TransactionCall call)
    {
        var state = unit.State;
        if (TransactionTransitions.TerminalRefusal(TransactionTransitions.Operation(call), state, unit.TransactionalId, unit.Lifecycle.CauseOf(state)) is { } refusal)
        {
            throw refusal;
        }
    }

    public void ThrowIfNotInTransaction(TransactionCall call)
    {
        var state = unit.State;
        if (state != TransactionState.InTransaction)
        {
            throw Refusal(call, state);
        }
    }

    /// <summary>The refusal of a call in a state: typed (<see cref="KafkaTransactionException"/>) when the unit was fenced or faulted.</summary>
    public Exception Refusal(TransactionCall call, TransactionState state) =>
        TransactionTransitions.Refusal(call, state, unit.TransactionalId, unit.Lifecycle.CauseOf(state));

    public void Exit(bool explicitCall = false) => unit.Calls.Exit(explicitCall);
}
