using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>
/// After fencing or a fatal fault, later calls are refused with the classification, not a bare
/// InvalidOperationException: a handler that maps <see cref="KafkaTransactionException.Kind"/> needs no look at the
/// unit's state. Misuse (a call in the wrong state by the caller's own doing) stays InvalidOperationException.
/// </summary>
public class TerminalRefusalTests
{
    private static readonly Message<string, string> Record = new() { Key = "k", Value = "v" };

    private static ValueTask WriteOne(ITransactionScope scope, CancellationToken cancellationToken)
    {
        scope.Produce("orders", Record);
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Fenced_then_ExecuteAsync_again_throws_KafkaTransactionException_of_kind_Fenced_with_the_error_that_fenced_it()
    {
        var kafka = new InMemoryKafkaCluster();
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.TransactionalIdPrefix = "orders-api";
            o.InstanceId = "pod-1";
        }).UseInMemoryKafka(kafka);
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.ExecuteAsync(WriteOne);
        kafka.FenceProducer(unit.TransactionalId);

        var fenced = (await unit.Awaiting(u => u.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>()).Which;
        fenced.Kind.Should().Be(TransactionErrorKind.Fenced);
        unit.State.Should().Be(TransactionState.Fenced);

        var again = (await unit.Awaiting(u => u.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>()).Which;
        again.Kind.Should().Be(TransactionErrorKind.Fenced);
        again.Error.Code.Should().Be(fenced.Error.Code, "the refusal carries the error that fenced the unit");
        again.Error.Reason.Should().Be(fenced.Error.Reason);
        again.State.Should().Be(TransactionState.Fenced);
        again.TransactionalId.Should().Be(unit.TransactionalId);
        again.Message.Should().Contain("ExecuteAsync").And.Contain("state Fenced").And.Contain($"'{unit.TransactionalId}'").And.Contain("replace this instance");

        var begin = unit.Invoking(u => u.BeginTransaction()).Should().Throw<KafkaTransactionException>().Which;
        begin.Kind.Should().Be(TransactionErrorKind.Fenced);
        begin.Error.Code.Should().Be(fenced.Error.Code);
        (await unit.Awaiting(u => u.InitializeAsync()).Should().ThrowAsync<KafkaTransactionException>()).Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        kafka.ReadTopic("orders").Should().HaveCount(1, "the fenced unit wrote nothing more");
    }

    [Fact]
    public async Task Faulted_then_every_call_but_ResetAsync_throws_KafkaTransactionException_of_kind_Fatal_with_the_error_that_faulted_it()
    {
        var (unit, factory) = TestUnits.Create(o => o.MaxProducerReplacements = 0);
        await unit.InitializeAsync();
        factory.Current.CommitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidTxnState));
        await unit.Awaiting(u => u.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>();
        unit.State.Should().Be(TransactionState.Faulted);

        var execute = (await unit.Awaiting(u => u.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>()).Which;
        var begin = unit.Invoking(u => u.BeginTransaction()).Should().Throw<KafkaTransactionException>().Which;
        var produce = unit.Invoking(u => u.Produce("orders", Record)).Should().Throw<KafkaTransactionException>().Which;
        var commit = (await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>()).Which;

        foreach (var refusal in new[] { execute, begin, produce, commit })
        {
            refusal.Kind.Should().Be(TransactionErrorKind.Fatal);
            refusal.Error.Code.Should().Be(ErrorCode.InvalidTxnState, "the refusal carries the error that faulted the unit");
            refusal.State.Should().Be(TransactionState.Faulted);
            refusal.Message.Should().Contain("state Faulted").And.Contain("'unit-test-0'").And.Contain("Fix the cause").And.Contain("ResetAsync");
        }

        await unit.ResetAsync();
        await unit.ExecuteAsync(WriteOne);
        unit.State.Should().Be(TransactionState.Ready, "a reset clears the fault");
    }

    [Fact]
    public async Task A_new_fault_after_a_reset_carries_its_own_error_not_the_first_one()
    {
        var (unit, factory) = TestUnits.Create(o => o.MaxProducerReplacements = 0);
        await unit.InitializeAsync();
        factory.Current.CommitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidTxnState));
        await unit.Awaiting(u => u.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>();
        await unit.ResetAsync();
        await unit.InitializeAsync();
        factory.Current.CommitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.OutOfOrderSequenceNumber));
        await unit.Awaiting(u => u.ExecuteAsync(WriteOne)).Should().ThrowAsync<KafkaTransactionException>();

        var refusal = unit.Invoking(u => u.BeginTransaction()).Should().Throw<KafkaTransactionException>().Which;

        refusal.Error.Code.Should().Be(ErrorCode.OutOfOrderSequenceNumber);
    }

    [Fact]
    public async Task Misuse_stays_InvalidOperationException()
    {
        var (unit, _) = await TestUnits.CreateReady();

        unit.Invoking(u => u.Produce("orders", Record)).Should().Throw<InvalidOperationException>().WithMessage("*BeginTransaction*");
        unit.BeginTransaction();
        unit.Invoking(u => u.BeginTransaction()).Should().Throw<InvalidOperationException>().WithMessage("*already has one open*");
        await unit.AbortAsync();
        await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<InvalidOperationException>().WithMessage("*No transaction is open*");
    }
}
