using Confluent.Kafka;

namespace KafkaTx;

/// <summary>
/// The one place that decides what a Kafka error means for a transaction. KafkaTx itself uses it for every
/// decision (abort, retry the call, re-run the work, stop); it is public so that application code makes the
/// same decisions. The table behind it is <c>docs/error-handling.md</c>; each row is proven through the real
/// client in the integration tests.
/// </summary>
/// <remarks>
/// The order of the checks matters. Fencing is recognised by code before anything else, because librdkafka
/// reports it in several shapes (a fatal <see cref="ErrorCode.Local_Fenced"/> from EndTxn or AddPartitionsToTxn,
/// but a non-fatal, abortable <see cref="ErrorCode.ProducerFenced"/> from a produce request), and a fenced
/// producer must stop whatever shape the error came in.
/// </remarks>
public static class TransactionErrorClassifier
{
    /// <summary>
    /// Classifies an exception raised by a Confluent.Kafka transactional call, a produce call or a delivery report.
    /// </summary>
    /// <param name="exception">The exception to classify.</param>
    /// <returns>The kind, or <see langword="null"/> when the exception is not a Kafka error (an application failure).</returns>
    public static TransactionErrorKind? Classify(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception switch
        {
            KafkaTransactionException transactionException => transactionException.Kind,
            KafkaException kafkaException => Classify(
                kafkaException.Error,
                requiresAbort: kafkaException is KafkaTxnRequiresAbortException,
                retriable: kafkaException is KafkaRetriableException),
            _ => null,
        };
    }

    /// <summary>Classifies a Kafka <see cref="Error"/> (for example one taken from a delivery report).</summary>
    /// <param name="error">The error to classify. It must be an error (<see cref="Error.IsError"/>).</param>
    /// <returns>The kind of the error.</returns>
    /// <exception cref="ArgumentException"><paramref name="error"/> is <see cref="ErrorCode.NoError"/>.</exception>
    /// <remarks>An <see cref="Error"/> does not say whether librdkafka flagged it as requiring an abort or as retriable
    /// (the exception type does), so prefer <see cref="Classify(Exception)"/> when there is an exception.</remarks>
    public static TransactionErrorKind Classify(Error error) => Classify(error, requiresAbort: false, retriable: false);

    private static TransactionErrorKind Classify(Error error, bool requiresAbort, bool retriable)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (!error.IsError)
        {
            throw new ArgumentException("NoError is not a failure and has no kind; classify only errors.", nameof(error));
        }

        if (IsFencing(error.Code))
        {
            return TransactionErrorKind.Fenced;
        }

        if (error.IsFatal || error.Code == ErrorCode.Local_Fatal)
        {
            return TransactionErrorKind.Fatal;
        }

        if (RequiresNewProducer(error.Code))
        {
            return TransactionErrorKind.Fatal;
        }

        if (IsStaleGroupMembership(error.Code))
        {
            // Sending the same offsets again carries the same stale group metadata and fails again: abort, and the
            // work runs again with the consumer's metadata of the moment (the processor reads it right before sending).
            return TransactionErrorKind.Abortable;
        }

        if (IsRejection(error.Code))
        {
            return TransactionErrorKind.Rejected;
        }

        if (requiresAbort)
        {
            return TransactionErrorKind.Abortable;
        }

        if (retriable || IsTransient(error.Code))
        {
            return TransactionErrorKind.Retriable;
        }

        // Anything else that fails inside a transaction leaves the transaction unusable but the producer intact:
        // abort and, if the caller allows, run the work again. Unknown errors are never treated as success.
        return TransactionErrorKind.Abortable;
    }

    /// <summary>
    /// Whether the code means a newer instance took over: it owns the transactional.id (producer fencing), or, for a
    /// processor's consumer, the static group membership (<c>group.instance.id</c>, KIP-345).
    /// </summary>
    internal static bool IsFencing(ErrorCode code) =>
        code is ErrorCode.Local_Fenced or ErrorCode.ProducerFenced or ErrorCode.InvalidProducerEpoch or ErrorCode.FencedInstanceId;

    /// <summary>
    /// Whether the code means the broker no longer knows this producer's id for its transactional.id: it idled past the
    /// broker's <c>transactional.id.expiration.ms</c> (7 days by default). KIP-1050 calls it application-recoverable:
    /// a new producer (InitTransactions) gets a fresh mapping, where librdkafka's epoch bump on abort may not.
    /// </summary>
    internal static bool RequiresNewProducer(ErrorCode code) => code is ErrorCode.InvalidProducerIdMapping;

    /// <summary>
    /// Whether the code means the consumer group metadata sent with the offsets (generation or, with the consumer
    /// protocol of KIP-848, member epoch) is no longer the group's: a rebalance moved on. Never fencing of the
    /// producer, never fatal: the transaction aborts and the work runs again.
    /// </summary>
    internal static bool IsStaleGroupMembership(ErrorCode code) => code is
        ErrorCode.IllegalGeneration or
        ErrorCode.UnknownMemberId or
        ErrorCode.StaleMemberEpoch or
        ErrorCode.FencedMemberEpoch;

    /// <summary>
    /// Whether a consumer error means its static member could not join because its <c>group.instance.id</c> is still
    /// held by another member (consumer protocol, KIP-848): after a restart, the previous incarnation until its
    /// session expires on the broker. librdkafka makes it a fatal consumer error; the processor joins again later.
    /// </summary>
    internal static bool IsUnreleasedInstanceId(ErrorCode code) => code is ErrorCode.UnreleasedInstanceId;

    /// <summary>Whether the code means Kafka refused the data or request for a reason a retry does not fix.</summary>
    internal static bool IsRejection(ErrorCode code) => code is
        ErrorCode.MsgSizeTooLarge or
        ErrorCode.InvalidMsgSize or
        ErrorCode.RecordListTooLarge or
        ErrorCode.InvalidRecord or
        ErrorCode.InvalidMsg or
        ErrorCode.InvalidTimestamp or
        ErrorCode.UnknownTopicOrPart or
        ErrorCode.Local_UnknownTopic or
        ErrorCode.Local_UnknownPartition or
        ErrorCode.TopicException or
        ErrorCode.TopicAuthorizationFailed or
        ErrorCode.GroupAuthorizationFailed or
        ErrorCode.ClusterAuthorizationFailed or
        ErrorCode.PolicyViolation or
        ErrorCode.Local_KeySerialization or
        ErrorCode.Local_ValueSerialization or
        ErrorCode.Local_InvalidArg;

    /// <summary>Codes that mean "try the same call again" even when the exception type does not say so.</summary>
    internal static bool IsTransient(ErrorCode code) => code is
        ErrorCode.Local_TimedOut or
        ErrorCode.Local_TimedOutQueue or
        ErrorCode.RequestTimedOut or
        ErrorCode.Local_QueueFull or
        ErrorCode.Local_Transport or
        ErrorCode.Local_AllBrokersDown or
        ErrorCode.NetworkException or
        ErrorCode.NotCoordinatorForGroup or
        ErrorCode.GroupCoordinatorNotAvailable or
        ErrorCode.GroupLoadInProgress or
        ErrorCode.ConcurrentTransactions or
        ErrorCode.LeaderNotAvailable or
        ErrorCode.NotLeaderForPartition or
        ErrorCode.NotEnoughReplicas or
        ErrorCode.NotEnoughReplicasAfterAppend;
}
