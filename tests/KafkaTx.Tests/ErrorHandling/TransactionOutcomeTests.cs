using Confluent.Kafka;
using KafkaTx.Tests.Fakes;

namespace KafkaTx.Tests.ErrorHandling;

/// <summary>
/// <see cref="KafkaTransactionException.Outcome"/>: NotCommitted when nothing was committed for sure, Unknown when
/// the commit was sent and then failed. One test per way a transaction can fail around its commit.
/// </summary>
public class TransactionOutcomeTests
{
    private static ValueTask Write(ITransactionScope scope)
    {
        scope.Produce("orders", new Message<string, string> { Key = "o-1", Value = "created" });
        return ValueTask.CompletedTask;
    }

    private static async Task<KafkaTransactionException> ExecuteFails(ITransactionalUnitOfWork unit) =>
        (await unit.Awaiting(u => u.ExecuteAsync((scope, _) => Write(scope))).Should().ThrowAsync<KafkaTransactionException>()).Which;

    [Fact]
    public async Task A_failure_before_the_commit_is_sent_is_not_committed()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 1);
        producer.DeliveryError = (_, _) => new Error(ErrorCode.MsgSizeTooLarge, "Broker: Message size too large");

        var failure = await ExecuteFails(unit);

        producer.CallCount("Commit").Should().Be(0, "a refused record is found before the commit is sent");
        failure.Outcome.Should().Be(TransactionOutcome.NotCommitted);
    }

    [Fact]
    public async Task A_refused_begin_is_not_committed()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.BeginFailures.Enqueue(KafkaErrors.Fenced());

        var failure = await ExecuteFails(unit);

        failure.Kind.Should().Be(TransactionErrorKind.Fenced);
        failure.Outcome.Should().Be(TransactionOutcome.NotCommitted);

        // Every later call is refused before anything is sent.
        (await ExecuteFails(unit)).Outcome.Should().Be(TransactionOutcome.NotCommitted);
    }

    [Fact]
    public async Task Fenced_after_the_commit_was_sent_is_unknown()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.CommitFailures.Enqueue(KafkaErrors.Fenced());

        var failure = await ExecuteFails(unit);

        failure.Kind.Should().Be(TransactionErrorKind.Fenced);
        failure.Outcome.Should().Be(TransactionOutcome.Unknown);
    }

    [Fact]
    public async Task Fenced_after_an_explicit_commit_was_sent_is_unknown()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.CommitFailures.Enqueue(KafkaErrors.Fenced());
        unit.BeginTransaction();
        unit.Produce("orders", new Message<string, string> { Key = "o-1", Value = "created" });

        var failure = (await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>()).Which;

        failure.Kind.Should().Be(TransactionErrorKind.Fenced);
        failure.Outcome.Should().Be(TransactionOutcome.Unknown);
    }

    [Fact]
    public async Task A_fatal_error_after_the_commit_was_sent_is_unknown_when_the_producer_is_replaced()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 5);
        producer.CommitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidTxnState));

        var failure = await ExecuteFails(unit);

        failure.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown);
        failure.Outcome.Should().Be(TransactionOutcome.Unknown);
    }

    [Fact]
    public async Task A_fatal_error_after_the_commit_was_sent_is_unknown_when_the_unit_faults()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.MaxProducerReplacements = 0);
        producer.CommitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.OutOfOrderSequenceNumber));

        var failure = await ExecuteFails(unit);

        failure.Kind.Should().Be(TransactionErrorKind.Fatal);
        unit.State.Should().Be(TransactionState.Faulted);
        failure.Outcome.Should().Be(TransactionOutcome.Unknown);
    }

    [Fact]
    public async Task A_commit_that_times_out_after_its_retries_is_unknown()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.CommitTimeout = TimeSpan.FromMilliseconds(100));
        for (var i = 0; i < 1000; i++)
        {
            producer.CommitFailures.Enqueue(KafkaErrors.TimedOut());
        }

        producer.OnBlockingCall = (call, _) => Thread.Sleep(call == "Commit" ? TimeSpan.FromMilliseconds(20) : TimeSpan.Zero);

        var failure = await ExecuteFails(unit);

        failure.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown);
        failure.Outcome.Should().Be(TransactionOutcome.Unknown);
    }

    [Fact]
    public async Task An_abortable_error_during_the_commit_aborts_and_is_not_committed()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 1);
        producer.CommitFailures.Enqueue(KafkaErrors.Abortable(ErrorCode.TransactionCoordinatorFenced));

        var failure = await ExecuteFails(unit);

        failure.Kind.Should().Be(TransactionErrorKind.Abortable);
        producer.CallCount("Abort").Should().Be(1);
        failure.Outcome.Should().Be(TransactionOutcome.NotCommitted);
    }

    [Fact]
    public async Task A_fatal_error_that_proves_the_commit_did_not_take_effect_is_not_committed()
    {
        // INVALID_PRODUCER_ID_MAPPING: the coordinator no longer knew the producer, so the commit cannot have completed.
        var (unit, producer) = await TestUnits.CreateReady(o => o.Retry.MaxAttempts = 1);
        producer.CommitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidProducerIdMapping));

        var failure = await ExecuteFails(unit);

        failure.Outcome.Should().Be(TransactionOutcome.NotCommitted);
    }
}
