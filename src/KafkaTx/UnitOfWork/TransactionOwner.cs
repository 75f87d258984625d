namespace KafkaTx.UnitOfWork;

/// <summary>
/// Who holds the unit's gate, and with it the open transaction: nobody, the owner of an explicit transaction
/// (BeginTransaction until it is committed or aborted: an application's loop, or the processor), or an ExecuteAsync
/// call (from waiting its turn until it returns, retries included).
/// </summary>
internal enum TransactionOwner
{
    None = 0,
    Explicit,
    Execute,
}
