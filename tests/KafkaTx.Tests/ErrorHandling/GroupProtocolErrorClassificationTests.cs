using Confluent.Kafka;

namespace KafkaTx.Tests.ErrorHandling;

/// <summary>
/// The errors of the consumer protocol (KIP-848) and of an expired transactional.id, in the shapes librdkafka 2.16
/// raises them (checked on its mock cluster: each TxnOffsetCommit error below came as a non-fatal
/// KafkaTxnRequiresAbortException, and so did INVALID_PRODUCER_ID_MAPPING on AddPartitionsToTxn and EndTxn).
/// </summary>
public class GroupProtocolErrorClassificationTests
{
    public static TheoryData<ErrorCode> StaleMembership => new()
    {
        ErrorCode.IllegalGeneration,
        ErrorCode.UnknownMemberId,
        ErrorCode.StaleMemberEpoch,
        ErrorCode.FencedMemberEpoch,
    };

    [Fact]
    public void The_codes_are_kafkas()
    {
        // Kafka's protocol numbers (KIP-848 for the last three); Confluent.Kafka 2.16's ErrorCode names them all.
        ((int)ErrorCode.IllegalGeneration).Should().Be(22);
        ((int)ErrorCode.UnknownMemberId).Should().Be(25);
        ((int)ErrorCode.InvalidProducerIdMapping).Should().Be(49);
        ((int)ErrorCode.FencedMemberEpoch).Should().Be(110);
        ((int)ErrorCode.UnreleasedInstanceId).Should().Be(111);
        ((int)ErrorCode.StaleMemberEpoch).Should().Be(113);
    }

    [Theory]
    [MemberData(nameof(StaleMembership))]
    public void Stale_group_metadata_on_sending_offsets_aborts_and_rewinds(ErrorCode code)
    {
        var error = new Error(code, "Failed to commit offsets to transaction");

        TransactionErrorClassifier.Classify(new KafkaTxnRequiresAbortException(error)).Should().Be(TransactionErrorKind.Abortable);
        TransactionErrorClassifier.Classify(new KafkaException(error)).Should().Be(TransactionErrorKind.Abortable);
        TransactionErrorClassifier.Classify(error).Should().Be(TransactionErrorKind.Abortable);
    }

    [Theory]
    [MemberData(nameof(StaleMembership))]
    public void Stale_group_metadata_is_never_retried_as_is(ErrorCode code)
    {
        // Retrying SendOffsetsToTransaction would send the same stale generation or member epoch again.
        var exception = new KafkaRetriableException(new Error(code, "stale"));

        TransactionErrorClassifier.Classify(exception).Should().Be(TransactionErrorKind.Abortable);
    }

    [Theory]
    [MemberData(nameof(StaleMembership))]
    public void Stale_group_metadata_is_not_fencing(ErrorCode code)
    {
        TransactionErrorClassifier.IsFencing(code).Should().BeFalse();
        TransactionErrorClassifier.IsStaleGroupMembership(code).Should().BeTrue();
    }

    [Fact]
    public void An_expired_producer_id_mapping_replaces_the_producer()
    {
        // librdkafka raises it as abortable with an epoch bump; KafkaTx replaces the producer (KIP-1050's
        // application-recoverable), whose InitTransactions gets the broker to map the transactional.id afresh.
        var error = new Error(ErrorCode.InvalidProducerIdMapping, "Producer attempted to use a producer id which is not currently assigned to its transactional id");

        TransactionErrorClassifier.Classify(new KafkaTxnRequiresAbortException(error)).Should().Be(TransactionErrorKind.Fatal);
        TransactionErrorClassifier.Classify(error).Should().Be(TransactionErrorKind.Fatal);
    }

    [Fact]
    public void An_unreleased_instance_id_is_recognised_and_is_not_fencing()
    {
        TransactionErrorClassifier.IsUnreleasedInstanceId(ErrorCode.UnreleasedInstanceId).Should().BeTrue();
        TransactionErrorClassifier.IsUnreleasedInstanceId(ErrorCode.FencedInstanceId).Should().BeFalse();
        TransactionErrorClassifier.IsFencing(ErrorCode.UnreleasedInstanceId).Should().BeFalse();
    }
}
