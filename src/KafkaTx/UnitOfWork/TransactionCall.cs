namespace KafkaTx.UnitOfWork;

/// <summary>The public calls of a unit of work, as the rows of <see cref="TransactionTransitions"/> name them.</summary>
internal enum TransactionCall
{
    Initialize,
    Begin,
    Produce,
    SendOffsets,
    Commit,
    Abort,
    Reset,
    Execute,
    Dispose,
}
