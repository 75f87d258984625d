using Confluent.Kafka;

namespace KafkaTx;

/// <summary>
/// A transactional operation failed. <see cref="Outcome"/> says whether the transaction may have committed,
/// <see cref="Kind"/> what the failure means and what to do;
/// <see cref="KafkaException.Error"/> keeps the underlying Kafka error, and <see cref="Exception.InnerException"/>
/// the exception Confluent.Kafka raised, when there was one.
/// </summary>
public class KafkaTransactionException : KafkaException
{
    /// <summary>Creates an exception for a failed transactional operation.</summary>
    /// <param name="kind">What the failure means.</param>
    /// <param name="error">The underlying Kafka error.</param>
    /// <param name="message">A message that names the operation, the transactional.id and what to do.</param>
    /// <param name="state">The state the unit of work is in after the failure.</param>
    /// <param name="innerException">The exception raised by Confluent.Kafka, if any.</param>
    public KafkaTransactionException(TransactionErrorKind kind, Error error, string message, TransactionState state, Exception? innerException = null)
        : base(error, innerException)
    {
        Kind = kind;
        State = state;
        DetailedMessage = message;
        Outcome = kind == TransactionErrorKind.OutcomeUnknown ? TransactionOutcome.Unknown : TransactionOutcome.NotCommitted;
    }

    /// <summary>
    /// Whether the transaction may have committed: <see cref="TransactionOutcome.NotCommitted"/> when nothing of it
    /// is visible for sure, <see cref="TransactionOutcome.Unknown"/> when the commit was sent and then failed (fenced,
    /// fatal error, or not completed within CommitTimeout). Check it before <see cref="Kind"/>: a Fenced or Fatal
    /// failure may come after the commit was sent. Defaults to Unknown for <see cref="TransactionErrorKind.OutcomeUnknown"/>,
    /// else NotCommitted.
    /// </summary>
    public TransactionOutcome Outcome { get; init; }

    /// <summary>What the failure means, and so what the caller should do.</summary>
    public TransactionErrorKind Kind { get; }

    /// <summary>The state the unit of work was left in.</summary>
    public TransactionState State { get; }

    /// <summary>The records that Kafka did not accept, when the failure came from delivery reports; otherwise empty.</summary>
    public IReadOnlyList<DeliveryFailure> FailedDeliveries { get; init; } = [];

    /// <summary>The transactional.id of the producer that failed, when known.</summary>
    public string? TransactionalId { get; init; }

    /// <summary>How many times the work ran before this exception was thrown (1 when it was not retried).</summary>
    public int Attempts { get; init; } = 1;

    private string DetailedMessage { get; }

    /// <inheritdoc />
    public override string Message => DetailedMessage;
}
