namespace KafkaTx.Processing;

/// <summary>
/// The processor's public state and the failure it stopped with. A failure (Fenced, Faulted) is also the loop's stop
/// request: the loop takes no new record once it is set, and its open batch neither commits on schedule nor on revoke.
/// </summary>
/// <remarks>Written on the processor's thread; read from any thread (health checks, the host).</remarks>
internal sealed class ProcessorStatus(ITransactionalUnitOfWork unit, ProcessorTelemetry telemetry)
{
    private int _state;

    public ProcessorState State => (ProcessorState)Volatile.Read(ref _state);

    public Exception? Failure { get; private set; }

    /// <summary>Whether the processor stopped on a failure: the loop must end.</summary>
    public bool HasFailed => State is ProcessorState.Fenced or ProcessorState.Faulted;

    public void Starting() => Set(ProcessorState.Starting);

    public void Running() => Set(ProcessorState.Running);

    /// <summary>Whether a failure means another instance owns the transactional.id now.</summary>
    public bool IsFencing(Exception failure) =>
        unit.State == TransactionState.Fenced || TransactionErrorClassifier.Classify(failure) == TransactionErrorKind.Fenced;

    /// <summary>
    /// The processor cannot go on: fenced (another instance owns the transactional.id), or faulted (the unit's
    /// self-healing gave up, or the error cannot be healed). It stops; its host decides what follows.
    /// </summary>
    public void Fail(Exception failure, bool fenced)
    {
        if (fenced)
        {
            telemetry.Fenced(failure);
            Stop(ProcessorState.Fenced, failure);
        }
        else
        {
            telemetry.Failed(failure);
            Stop(ProcessorState.Faulted, failure);
        }
    }

    /// <summary>Stops the processor on a failure already reported (<see cref="ProcessorState.Fenced"/> or <see cref="ProcessorState.Faulted"/>).</summary>
    public void Stop(ProcessorState state, Exception failure)
    {
        Failure = failure;
        Set(state);
    }

    /// <summary>The loop ended without a failure: the host stopped it.</summary>
    public void StoppedIfRunning()
    {
        if (State is ProcessorState.Created or ProcessorState.Starting or ProcessorState.Running)
        {
            Set(ProcessorState.Stopped);
        }
    }

    private void Set(ProcessorState state) => Volatile.Write(ref _state, (int)state);
}
