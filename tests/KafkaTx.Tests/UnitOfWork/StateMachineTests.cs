using Confluent.Kafka;
using KafkaTx.Tests.Fakes;

namespace KafkaTx.Tests.UnitOfWork;

public class StateMachineTests
{
    private static readonly Message<string, string> Record = new() { Key = "k", Value = "v" };

    [Fact]
    public void A_new_unit_is_uninitialized_and_has_called_nothing()
    {
        var (unit, factory) = TestUnits.Create();

        unit.State.Should().Be(TransactionState.Uninitialized);
        unit.TransactionalId.Should().Be("unit-test-0");
        factory.Current.Calls.Should().BeEmpty();
    }

    [Fact]
    public async Task Initialize_calls_InitTransactions_once_and_becomes_ready()
    {
        var (unit, factory) = TestUnits.Create();

        await unit.InitializeAsync();
        await unit.InitializeAsync();

        unit.State.Should().Be(TransactionState.Ready);
        factory.Current.CallCount("Init").Should().Be(1);
    }

    [Fact]
    public async Task Begin_produce_commit_walks_ready_in_transaction_ready()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        unit.BeginTransaction();
        unit.State.Should().Be(TransactionState.InTransaction);
        unit.Produce("task-events", Record);
        await unit.CommitAsync();

        unit.State.Should().Be(TransactionState.Ready);
        producer.Committed.Should().ContainSingle(r => r.Topic == "task-events" && r.ValueText == "v");
    }

    [Fact]
    public async Task Begin_produce_abort_walks_ready_in_transaction_ready_and_makes_nothing_visible()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        unit.BeginTransaction();
        unit.Produce("task-events", Record);
        await unit.AbortAsync();

        unit.State.Should().Be(TransactionState.Ready);
        producer.Committed.Should().BeEmpty();
        producer.Aborted.Should().ContainSingle();
    }

    [Fact]
    public async Task A_unit_runs_many_transactions_in_sequence()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        for (var i = 0; i < 3; i++)
        {
            unit.BeginTransaction();
            unit.Produce("t", new Message<string, string> { Value = i.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            await unit.CommitAsync();
        }

        producer.Committed.Select(r => r.ValueText).Should().Equal("0", "1", "2");
    }

    [Fact]
    public void Begin_before_initialize_throws_naming_state_and_call()
    {
        var (unit, factory) = TestUnits.Create();

        Action act = unit.BeginTransaction;

        act.Should().Throw<InvalidOperationException>().WithMessage("*BeginTransaction*Uninitialized*InitializeAsync*");
        factory.Current.Calls.Should().BeEmpty();
    }

    [Fact]
    public async Task Commit_without_begin_throws_naming_state_and_sends_nothing()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        var act = () => unit.CommitAsync();

        await act.Should().ThrowAsync<InvalidOperationException>().WithMessage("*CommitAsync*Ready*BeginTransaction*");
        producer.Calls.Should().Equal("Init");
    }

    [Fact]
    public async Task Abort_without_begin_throws_naming_state()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        var act = () => unit.AbortAsync();

        await act.Should().ThrowAsync<InvalidOperationException>().WithMessage("*AbortAsync*Ready*");
        producer.Calls.Should().Equal("Init");
    }

    [Fact]
    public async Task Produce_outside_a_transaction_throws_naming_state_and_sends_nothing()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        var act = () => unit.Produce("task-events", Record);

        act.Should().Throw<InvalidOperationException>().WithMessage("*Produce*Ready*inside a transaction*");
        producer.ProducedCount.Should().Be(0);
    }

    [Fact]
    public async Task SendOffsets_outside_a_transaction_throws_naming_state()
    {
        var (unit, producer) = await TestUnits.CreateReady();

        var act = () => unit.SendOffsetsAsync([new TopicPartitionOffset("in", 0, 5)], new FakeGroupMetadata());

        await act.Should().ThrowAsync<InvalidOperationException>().WithMessage("*SendOffsetsAsync*Ready*");
        producer.Calls.Should().Equal("Init");
    }

    [Fact]
    public async Task Begin_twice_throws_and_keeps_the_open_transaction()
    {
        var (unit, _) = await TestUnits.CreateReady();
        unit.BeginTransaction();

        Action act = unit.BeginTransaction;

        act.Should().Throw<InvalidOperationException>().WithMessage("*BeginTransaction*InTransaction*already has one open*");
        unit.State.Should().Be(TransactionState.InTransaction);
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    public async Task Produce_to_a_null_or_empty_topic_throws_before_sending(string? topic)
    {
        var (unit, producer) = await TestUnits.CreateReady();
        unit.BeginTransaction();

        var act = () => unit.Produce(topic!, Record);

        act.Should().Throw<ArgumentException>().WithMessage("*topic is null or empty*");
        producer.ProducedCount.Should().Be(0);
    }

    [Fact]
    public async Task Produce_with_a_null_message_throws_before_sending()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        unit.BeginTransaction();

        var act = () => unit.Produce<string, string>("t", null!);

        act.Should().Throw<ArgumentNullException>();
        producer.ProducedCount.Should().Be(0);
    }

    [Fact]
    public async Task Every_call_after_dispose_throws_ObjectDisposedException_naming_the_call()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        await unit.DisposeAsync();

        unit.State.Should().Be(TransactionState.Disposed);
        producer.IsDisposed.Should().BeTrue();
        unit.Invoking(u => u.BeginTransaction()).Should().Throw<ObjectDisposedException>().WithMessage("*BeginTransaction*Disposed*");
        unit.Invoking(u => u.Produce("t", Record)).Should().Throw<ObjectDisposedException>().WithMessage("*Produce*Disposed*");
        await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<ObjectDisposedException>().WithMessage("*CommitAsync*Disposed*");
        await unit.Awaiting(u => u.InitializeAsync()).Should().ThrowAsync<ObjectDisposedException>();
        await unit.Awaiting(u => u.ExecuteAsync((_, _) => ValueTask.CompletedTask)).Should().ThrowAsync<ObjectDisposedException>().WithMessage("*ExecuteAsync*Disposed*");
        await unit.Awaiting(u => u.ResetAsync()).Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task Disposing_with_an_open_transaction_aborts_it()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        unit.BeginTransaction();
        unit.Produce("t", Record);

        await unit.DisposeAsync();

        producer.Calls.Should().ContainInOrder("Begin", "Produce:t", "Abort", "Dispose");
        producer.Committed.Should().BeEmpty();
    }

    [Fact]
    public async Task Synchronous_dispose_with_an_open_transaction_aborts_it()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        unit.BeginTransaction();
        unit.Produce("t", Record);

        unit.Dispose();

        producer.Calls.Should().ContainInOrder("Abort", "Dispose");
        unit.State.Should().Be(TransactionState.Disposed);
    }

    [Fact]
    public async Task After_fenced_every_call_throws_naming_Fenced_and_sends_nothing()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.CommitFailures.Enqueue(KafkaErrors.Fenced());
        unit.BeginTransaction();
        unit.Produce("t", Record);
        await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();
        var callsWhenFenced = producer.Calls.Count;

        unit.State.Should().Be(TransactionState.Fenced);
        unit.Invoking(u => u.BeginTransaction()).Should().Throw<KafkaTransactionException>().WithMessage("*BeginTransaction*Fenced*").Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        unit.Invoking(u => u.Produce("t", Record)).Should().Throw<KafkaTransactionException>().WithMessage("*Produce*Fenced*").Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        (await unit.Awaiting(u => u.ExecuteAsync((_, _) => ValueTask.CompletedTask)).Should().ThrowAsync<KafkaTransactionException>().WithMessage("*Fenced*")).Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        (await unit.Awaiting(u => u.ResetAsync()).Should().ThrowAsync<KafkaTransactionException>().WithMessage("*ResetAsync*Fenced*")).Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        producer.Calls.Count.Should().Be(callsWhenFenced);
    }

    [Fact]
    public async Task Fenced_during_commit_disposes_the_producer()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        producer.CommitFailures.Enqueue(KafkaErrors.Fenced());
        unit.BeginTransaction();

        var failure = await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        failure.Which.State.Should().Be(TransactionState.Fenced);
        failure.Which.Error.Code.Should().Be(ErrorCode.Local_Fenced);
        failure.Which.Message.Should().Contain("unit-test-0").And.Contain("Never retry");
        producer.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public async Task With_self_healing_off_a_fatal_error_faults_the_unit_and_reset_replaces_the_producer()
    {
        var (unit, factory) = TestUnits.Create(o => o.MaxProducerReplacements = 0);
        await unit.InitializeAsync();
        var first = factory.Current;
        first.CommitFailures.Enqueue(KafkaErrors.Fatal());
        unit.BeginTransaction();

        var failure = await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();
        failure.Which.Kind.Should().Be(TransactionErrorKind.Fatal);
        unit.State.Should().Be(TransactionState.Faulted);
        unit.Invoking(u => u.BeginTransaction()).Should().Throw<KafkaTransactionException>().WithMessage("*Faulted*ResetAsync*").Which.Kind.Should().Be(TransactionErrorKind.Fatal);

        await unit.ResetAsync();

        unit.State.Should().Be(TransactionState.Uninitialized);
        first.IsDisposed.Should().BeTrue();
        factory.Producers.Should().HaveCount(2);
        await unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("t", Record);
            return ValueTask.CompletedTask;
        });
        factory.Current.Calls.Should().StartWith(["Init", "Begin"]);
        factory.Current.Committed.Should().ContainSingle();
    }

    [Fact]
    public async Task Reset_with_an_open_healthy_transaction_is_refused()
    {
        var (unit, _) = await TestUnits.CreateReady();
        unit.BeginTransaction();

        await unit.Awaiting(u => u.ResetAsync()).Should().ThrowAsync<InvalidOperationException>().WithMessage("*ResetAsync*InTransaction*abort it instead*");
    }

    [Fact]
    public async Task Commit_or_abort_inside_ExecuteAsync_is_refused()
    {
        var (unit, producer) = await TestUnits.CreateReady();
        InvalidOperationException? commitInside = null;
        InvalidOperationException? abortInside = null;

        await unit.ExecuteAsync(async (_, _) =>
        {
            try { await unit.CommitAsync(CancellationToken.None); } catch (InvalidOperationException e) { commitInside = e; }
            try { await unit.AbortAsync(CancellationToken.None); } catch (InvalidOperationException e) { abortInside = e; }
        });

        commitInside!.Message.Should().Contain("CommitAsync").And.Contain("inside ExecuteAsync");
        abortInside!.Message.Should().Contain("AbortAsync").And.Contain("inside ExecuteAsync");
        producer.CallCount("Commit").Should().Be(1);
    }

    [Fact]
    public async Task Initialize_that_times_out_stays_uninitialized_and_can_be_resumed()
    {
        var (unit, factory) = TestUnits.Create(o => o.InitTimeout = TimeSpan.FromMilliseconds(200), setup: p =>
        {
            for (var i = 0; i < 1000; i++)
            {
                p.InitFailures.Enqueue(KafkaErrors.TimedOut());
            }

            p.OnBlockingCall = (_, timeout) => Thread.Sleep(timeout > TimeSpan.FromMilliseconds(20) ? TimeSpan.FromMilliseconds(20) : timeout);
        });

        var failure = await unit.Awaiting(u => u.InitializeAsync()).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Retriable);
        failure.Which.Message.Should().Contain("InitTimeout");
        unit.State.Should().Be(TransactionState.Uninitialized);
        factory.Current.InitFailures.Clear();
        await unit.InitializeAsync();
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task Initialize_denied_by_authorization_faults_with_advice_about_ACLs()
    {
        var (unit, _) = TestUnits.Create(setup: p => p.InitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.TransactionalIdAuthorizationFailed)));

        var failure = await unit.Awaiting(u => u.InitializeAsync()).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Fatal);
        failure.Which.Message.Should().Contain("ACLs");
        unit.State.Should().Be(TransactionState.Faulted);
    }

    [Fact]
    public async Task ResetAsync_refused_on_an_open_explicit_transaction_keeps_it_owning_the_unit_so_a_queued_ExecuteAsync_waits()
    {
        var (unit, _) = await TestUnits.CreateReady();
        unit.BeginTransaction();

        await unit.Awaiting(u => u.ResetAsync()).Should().ThrowAsync<InvalidOperationException>().WithMessage("*abort it instead*");
        var queued = unit.ExecuteAsync((_, _) => ValueTask.CompletedTask);
        await Task.Delay(100); // a wrongly released gate would let the queued call fail at once
        queued.IsCompleted.Should().BeFalse("the open transaction still owns the unit");

        await unit.CommitAsync();
        await queued.WaitAsync(TimeSpan.FromSeconds(10));
        unit.State.Should().Be(TransactionState.Ready);
    }
}
