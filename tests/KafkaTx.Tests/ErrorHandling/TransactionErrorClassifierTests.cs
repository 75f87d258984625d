using Confluent.Kafka;

namespace KafkaTx.Tests.ErrorHandling;

/// <summary>
/// One row per case of docs/error-handling.md, with the exception shaped as Confluent.Kafka raises it. The
/// integration tests prove the same rows by making the real client raise them.
/// </summary>
public class TransactionErrorClassifierTests
{
    public static TheoryData<string, Exception, TransactionErrorKind> Rows => new()
    {
        // Fencing, in every shape librdkafka reports it.
        { "EndTxn fenced", new KafkaException(new Error(ErrorCode.Local_Fenced, "fenced", true)), TransactionErrorKind.Fenced },
        { "ProducerFenced on produce (abortable shape)", new KafkaTxnRequiresAbortException(new Error(ErrorCode.ProducerFenced, "newer producer")), TransactionErrorKind.Fenced },
        { "ProducerFenced fatal", new KafkaException(new Error(ErrorCode.ProducerFenced, "newer producer", true)), TransactionErrorKind.Fenced },
        { "InvalidProducerEpoch", new KafkaException(new Error(ErrorCode.InvalidProducerEpoch, "old epoch", true)), TransactionErrorKind.Fenced },
        { "fenced while sending offsets (abortable shape)", new KafkaTxnRequiresAbortException(new Error(ErrorCode.Local_Fenced, "fenced")), TransactionErrorKind.Fenced },
        { "fenced produce() after fencing (non-fatal shape)", new ProduceException<byte[], byte[]>(new Error(ErrorCode.Local_Fenced, "fenced"), new DeliveryResult<byte[], byte[]>()), TransactionErrorKind.Fenced },

        // Fatal.
        { "InvalidTxnState", new KafkaException(new Error(ErrorCode.InvalidTxnState, "invalid state", true)), TransactionErrorKind.Fatal },
        { "TransactionalIdAuthorizationFailed", new KafkaException(new Error(ErrorCode.TransactionalIdAuthorizationFailed, "denied", true)), TransactionErrorKind.Fatal },
        { "OutOfOrderSequenceNumber", new KafkaException(new Error(ErrorCode.OutOfOrderSequenceNumber, "sequence", true)), TransactionErrorKind.Fatal },
        { "Local_Fatal", new KafkaException(new Error(ErrorCode.Local_Fatal, "fatal")), TransactionErrorKind.Fatal },
        { "any error flagged fatal", new KafkaException(new Error(ErrorCode.Unknown, "?", true)), TransactionErrorKind.Fatal },

        // Abortable.
        { "TransactionCoordinatorFenced", new KafkaTxnRequiresAbortException(new Error(ErrorCode.TransactionCoordinatorFenced, "coordinator fenced")), TransactionErrorKind.Abortable },
        { "failed delivery (Local_Inconsistent)", new KafkaTxnRequiresAbortException(new Error(ErrorCode.Local_Inconsistent, "1 message(s) failed delivery")), TransactionErrorKind.Abortable },
        { "unknown broker error on EndTxn", new KafkaTxnRequiresAbortException(new Error(ErrorCode.Unknown, "Unknown broker error")), TransactionErrorKind.Abortable },
        { "UnknownMemberId on TxnOffsetCommit", new KafkaTxnRequiresAbortException(new Error(ErrorCode.UnknownMemberId, "Unknown member")), TransactionErrorKind.Abortable },
        { "IllegalGeneration on TxnOffsetCommit", new KafkaTxnRequiresAbortException(new Error(ErrorCode.IllegalGeneration, "generation id is not valid")), TransactionErrorKind.Abortable },
        { "StaleMemberEpoch on TxnOffsetCommit", new KafkaTxnRequiresAbortException(new Error(ErrorCode.StaleMemberEpoch, "member epoch is stale")), TransactionErrorKind.Abortable },
        { "FencedMemberEpoch on TxnOffsetCommit", new KafkaTxnRequiresAbortException(new Error(ErrorCode.FencedMemberEpoch, "member epoch is fenced")), TransactionErrorKind.Abortable },
        { "InvalidProducerIdMapping (expired transactional.id)", new KafkaTxnRequiresAbortException(new Error(ErrorCode.InvalidProducerIdMapping, "producer id not assigned to its transactional id")), TransactionErrorKind.Fatal },
        { "an unrecognised non-fatal error", new KafkaException(new Error(ErrorCode.Local_State, "Operation not valid in state")), TransactionErrorKind.Abortable },

        // Retriable.
        { "Local_TimedOut", new KafkaRetriableException(new Error(ErrorCode.Local_TimedOut, "retry call to resume")), TransactionErrorKind.Retriable },
        { "ConcurrentTransactions", new KafkaException(new Error(ErrorCode.ConcurrentTransactions, "concurrent")), TransactionErrorKind.Retriable },
        { "NotCoordinator", new KafkaException(new Error(ErrorCode.NotCoordinatorForGroup, "not coordinator")), TransactionErrorKind.Retriable },
        { "CoordinatorLoadInProgress", new KafkaException(new Error(ErrorCode.GroupLoadInProgress, "loading")), TransactionErrorKind.Retriable },
        { "CoordinatorNotAvailable", new KafkaException(new Error(ErrorCode.GroupCoordinatorNotAvailable, "not available")), TransactionErrorKind.Retriable },
        { "Local_QueueFull", new ProduceException<byte[], byte[]>(new Error(ErrorCode.Local_QueueFull, "queue full"), new DeliveryResult<byte[], byte[]>()), TransactionErrorKind.Retriable },
        { "any KafkaRetriableException", new KafkaRetriableException(new Error(ErrorCode.Local_Fail, "?")), TransactionErrorKind.Retriable },

        // Rejected.
        { "MsgSizeTooLarge from the broker", new KafkaTxnRequiresAbortException(new Error(ErrorCode.MsgSizeTooLarge, "Message size too large")), TransactionErrorKind.Rejected },
        { "MsgSizeTooLarge from produce()", new ProduceException<byte[], byte[]>(new Error(ErrorCode.MsgSizeTooLarge, "too large"), new DeliveryResult<byte[], byte[]>()), TransactionErrorKind.Rejected },
        { "RecordListTooLarge", new KafkaTxnRequiresAbortException(new Error(ErrorCode.RecordListTooLarge, "batch too large")), TransactionErrorKind.Rejected },
        { "InvalidRecord", new KafkaTxnRequiresAbortException(new Error(ErrorCode.InvalidRecord, "invalid")), TransactionErrorKind.Rejected },
        { "UnknownTopicOrPart", new KafkaException(new Error(ErrorCode.UnknownTopicOrPart, "unknown topic")), TransactionErrorKind.Rejected },
        { "Local_UnknownTopic", new KafkaException(new Error(ErrorCode.Local_UnknownTopic, "unknown topic")), TransactionErrorKind.Rejected },
        { "TopicAuthorizationFailed", new KafkaTxnRequiresAbortException(new Error(ErrorCode.TopicAuthorizationFailed, "denied")), TransactionErrorKind.Rejected },
        { "GroupAuthorizationFailed", new KafkaTxnRequiresAbortException(new Error(ErrorCode.GroupAuthorizationFailed, "denied")), TransactionErrorKind.Rejected },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public void Classifies_each_row(string row, Exception exception, TransactionErrorKind expected)
    {
        TransactionErrorClassifier.Classify(exception).Should().Be(expected, row);
    }

    [Fact]
    public void A_KafkaTransactionException_keeps_its_kind()
    {
        var exception = new KafkaTransactionException(TransactionErrorKind.OutcomeUnknown, new Error(ErrorCode.Local_TimedOut), "m", TransactionState.Committing);

        TransactionErrorClassifier.Classify(exception).Should().Be(TransactionErrorKind.OutcomeUnknown);
    }

    [Fact]
    public void Application_exceptions_have_no_kind()
    {
        TransactionErrorClassifier.Classify(new InvalidOperationException()).Should().BeNull();
    }

    [Fact]
    public void An_error_without_its_exception_is_classified_by_code()
    {
        TransactionErrorClassifier.Classify(new Error(ErrorCode.MsgSizeTooLarge)).Should().Be(TransactionErrorKind.Rejected);
        TransactionErrorClassifier.Classify(new Error(ErrorCode.ProducerFenced)).Should().Be(TransactionErrorKind.Fenced);
        TransactionErrorClassifier.Classify(new Error(ErrorCode.Local_TimedOut)).Should().Be(TransactionErrorKind.Retriable);
    }

    [Fact]
    public void NoError_is_not_a_failure()
    {
        var act = () => TransactionErrorClassifier.Classify(new Error(ErrorCode.NoError));

        act.Should().Throw<ArgumentException>().WithMessage("*NoError*");
    }

    [Fact]
    public void The_exception_keeps_the_underlying_error_and_cause()
    {
        var cause = new KafkaException(new Error(ErrorCode.InvalidTxnState, "invalid", true));
        var exception = new KafkaTransactionException(TransactionErrorKind.Fatal, cause.Error, "what happened", TransactionState.Faulted, cause);

        exception.Should().BeAssignableTo<KafkaException>();
        exception.Error.Code.Should().Be(ErrorCode.InvalidTxnState);
        exception.Error.IsFatal.Should().BeTrue();
        exception.InnerException.Should().BeSameAs(cause);
        exception.Message.Should().Be("what happened");
    }
}
