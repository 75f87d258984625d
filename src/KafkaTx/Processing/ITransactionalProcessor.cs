namespace KafkaTx;

/// <summary>
/// A running consume-transform-produce processor, resolved as a keyed service under its producer's name, for
/// diagnostics and health checks.
/// </summary>
public interface ITransactionalProcessor
{
    /// <summary>The name of the producer registration the processor belongs to.</summary>
    string Name { get; }

    /// <summary>
    /// The transactional.id of the producer the processor owns, resolved when it starts (from its options:
    /// TransactionalId, or TransactionalIdPrefix and InstanceId); <see langword="null"/> before it starts.
    /// </summary>
    string? TransactionalId { get; }

    /// <summary>The processor's state.</summary>
    ProcessorState State { get; }

    /// <summary>The failure that stopped it, when <see cref="State"/> is Fenced or Faulted.</summary>
    Exception? Failure { get; }

    /// <summary>Transactions committed since start.</summary>
    long CommittedTransactions { get; }

    /// <summary>Input records whose outputs have been committed since start.</summary>
    long CommittedRecords { get; }
}
