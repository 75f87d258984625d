using System.Diagnostics.Metrics;
using Confluent.Kafka;
using KafkaTx.Telemetry;
using KafkaTx.Tests.Fakes;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>
/// A fatal error that is not fencing replaces the producer inside the unit. What the caller sees depends on where it
/// hit: during an abort, the abort's cause; before the commit, an abortable failure (the work runs again); during the
/// commit, OutcomeUnknown (never re-run). Fencing is never healed.
/// </summary>
public class SelfHealingTests
{
    private static readonly Message<string, string> Record = new() { Key = "task-1", Value = "created" };

    private static ValueTask Write(ITransactionScope scope)
    {
        scope.Produce("task-events", Record);
        return ValueTask.CompletedTask;
    }

    /// <summary>Every new producer gets the setup; the first one also gets <paramref name="first"/>.</summary>
    private static (TransactionalUnitOfWork Unit, FakeClientFactory Factory) Create(Action<FakeProducer> first, Action<KafkaTransactionsOptions>? configure = null)
    {
        var created = 0;
        return TestUnits.Create(configure, setup: p =>
        {
            if (++created == 1)
            {
                first(p);
            }
        });
    }

    [Fact]
    public async Task A_fatal_abort_after_the_work_failed_reports_the_works_own_exception_and_leaves_the_unit_ready()
    {
        // confluentinc/librdkafka#4849: the abort right after producing fails with a fatal INVALID_TXN_STATE.
        var (unit, factory) = Create(p => p.AbortFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidTxnState)));

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            scope.Produce("task-events", Record);
            throw new InvalidOperationException("the audit service is down");
        })).Should().ThrowAsync<InvalidOperationException>();

        failure.Which.Message.Should().Be("the audit service is down");
        unit.State.Should().Be(TransactionState.Ready, "the replacement producer was initialized at once");
        factory.Producers.Should().HaveCount(2);
        factory.Producers[0].IsDisposed.Should().BeTrue();
        factory.Producers[0].Committed.Should().BeEmpty();
        factory.Producers[1].Calls.Should().Equal("Init");

        await unit.ExecuteAsync((scope, _) => Write(scope));
        factory.Producers[1].Committed.Should().ContainSingle();
    }

    [Fact]
    public async Task On_a_broker_without_KIP_360_a_rejected_record_still_fails_as_Rejected_and_the_unit_goes_on()
    {
        // Brokers before 2.5 cannot bump the epoch after a rejected record: librdkafka turns the producer fatal.
        var (unit, factory) = Create(p =>
        {
            p.DeliveryErrorFor = r => r.KeyText == "big" ? new Error(ErrorCode.MsgSizeTooLarge, "Broker: Message size too large") : null;
            p.AbortFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.Local_UnsupportedFeature));
        }, o =>
        {
            o.Retry.MaxAttempts = 3;
            o.DeliveryTracking = DeliveryTracking.EveryRecord; // the refused record is the topic's second: only EveryRecord names it
        });

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            scope.Produce("small-records", new Message<string, string> { Key = "small", Value = "ok" });
            scope.Produce("small-records", new Message<string, string> { Key = "big", Value = new string('x', 10_000) });
            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        failure.Which.Attempts.Should().Be(1);
        failure.Which.FailedDeliveries.Should().ContainSingle(f => f.Error.Code == ErrorCode.MsgSizeTooLarge);
        unit.State.Should().Be(TransactionState.Ready);
        factory.Producers.Should().HaveCount(2);

        await unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("small-records", new Message<string, string> { Key = "after", Value = "ok" });
            return ValueTask.CompletedTask;
        });
        factory.Producers.SelectMany(p => p.Committed).Select(r => r.KeyText).Should().Equal("after");
    }

    public static TheoryData<string> BeforeTheCommit => ["Begin", "Produce", "SendOffsets", "Delivery"];

    [Theory]
    [MemberData(nameof(BeforeTheCommit))]
    public async Task A_fatal_error_before_the_commit_replaces_the_producer_and_runs_the_work_again(string where)
    {
        var (unit, factory) = Create(p =>
        {
            var fatal = KafkaErrors.Fatal(ErrorCode.OutOfOrderSequenceNumber);
            switch (where)
            {
                case "Begin":
                    p.BeginFailures.Enqueue(fatal);
                    break;
                case "Produce":
                    p.ProduceFailures.Enqueue(new ProduceException<byte[]?, byte[]?>(fatal.Error, new DeliveryResult<byte[]?, byte[]?>()));
                    break;
                case "SendOffsets":
                    p.SendOffsetsFailures.Enqueue(fatal);
                    break;
                default:
                    p.DeliveryError = (_, _) => fatal.Error;
                    p.AbortFailures.Enqueue(fatal); // a producer with a fatal error refuses the abort too
                    break;
            }
        });
        var runs = 0;

        await unit.ExecuteAsync(async (scope, ct) =>
        {
            runs++;
            scope.Produce("task-events", Record);
            await scope.SendOffsetsAsync([new TopicPartitionOffset("orders", 0, 5)], new FakeGroupMetadata(), ct);
        });

        runs.Should().Be(where == "Begin" ? 1 : 2, "a failed Begin ran no work; otherwise the work ran again in a new transaction");
        factory.Producers.Should().HaveCount(2);
        factory.Producers[0].Committed.Should().BeEmpty();
        factory.Producers[1].Calls.Should().StartWith("Init", "Begin");
        factory.Producers[1].Committed.Should().ContainSingle();
        unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task A_fatal_error_during_the_commit_is_OutcomeUnknown_never_run_again_and_the_unit_stays_usable()
    {
        var (unit, factory) = Create(p => p.CommitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidTxnState)), o => o.Retry.MaxAttempts = 5);
        var runs = 0;

        var failure = await unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            runs++;
            return Write(scope);
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown);
        failure.Which.Message.Should().Contain("unknown").And.Contain("replaced");
        runs.Should().Be(1);
        unit.State.Should().Be(TransactionState.Ready);
        factory.Producers.Should().HaveCount(2);

        await unit.ExecuteAsync((scope, _) => Write(scope));
        factory.Producers[1].Committed.Should().ContainSingle();
    }

    [Fact]
    public async Task A_fatal_abort_in_an_explicit_transaction_completes_the_abort_and_the_next_transaction_begins()
    {
        var (unit, factory) = Create(p => p.AbortFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidTxnState)));
        await unit.InitializeAsync();
        unit.BeginTransaction();
        unit.Produce("task-events", Record);

        await unit.AbortAsync();

        unit.State.Should().Be(TransactionState.Ready);
        unit.BeginTransaction();
        unit.Produce("task-events", Record);
        await unit.CommitAsync();
        factory.Producers[1].Committed.Should().ContainSingle();
        factory.Producers[0].Committed.Should().BeEmpty();
    }

    [Fact]
    public async Task Fencing_is_never_healed()
    {
        var (unit, factory) = Create(p => p.AbortFailures.Enqueue(KafkaErrors.Fenced()));

        await unit.Awaiting(u => u.ExecuteAsync((_, _) => throw new InvalidDataException("bad input")))
            .Should().ThrowAsync<KafkaTransactionException>().Where(e => e.Kind == TransactionErrorKind.Fenced);

        unit.State.Should().Be(TransactionState.Fenced);
        factory.Producers.Should().ContainSingle();
    }

    [Fact]
    public async Task An_authorization_failure_is_not_healed_since_a_new_producer_would_fail_the_same_way()
    {
        var (unit, factory) = Create(p => p.AbortFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.TransactionalIdAuthorizationFailed)));

        var failure = await unit.Awaiting(u => u.ExecuteAsync((_, _) => throw new InvalidDataException("bad input")))
            .Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Fatal);
        failure.Which.Message.Should().Contain("ACLs");
        unit.State.Should().Be(TransactionState.Faulted);
        factory.Producers.Should().ContainSingle();
    }

    [Fact]
    public async Task Replacements_are_bounded_in_a_row_and_a_completed_transaction_resets_the_count()
    {
        var (unit, factory) = TestUnits.Create(o => o.MaxProducerReplacements = 2, setup: p => p.AbortFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidTxnState)));
        static Task Failing(ITransactionalUnitOfWork unit) => unit.ExecuteAsync((_, _) => throw new InvalidDataException("bad input"));

        // Two fatal aborts in a row are healed...
        await unit.Awaiting(Failing).Should().ThrowAsync<InvalidDataException>();
        await unit.Awaiting(Failing).Should().ThrowAsync<InvalidDataException>();
        unit.State.Should().Be(TransactionState.Ready);

        // ...a commit in between resets the count...
        await unit.ExecuteAsync((scope, _) => Write(scope));
        await unit.Awaiting(Failing).Should().ThrowAsync<InvalidDataException>();
        await unit.Awaiting(Failing).Should().ThrowAsync<InvalidDataException>();
        factory.Producers.Should().HaveCount(5);

        // ...and the third in a row faults the unit, saying why.
        var failure = await unit.Awaiting(Failing).Should().ThrowAsync<KafkaTransactionException>();
        failure.Which.Kind.Should().Be(TransactionErrorKind.Fatal);
        failure.Which.Message.Should().Contain("MaxProducerReplacements");
        unit.State.Should().Be(TransactionState.Faulted);
        factory.Producers.Should().HaveCount(5);
    }

    [Fact]
    public async Task A_replacement_is_logged_and_counted()
    {
        var logger = new ListLogger();
        var factory = new FakeClientFactory();
        var created = 0;
        factory.Setup = p =>
        {
            if (++created == 1)
            {
                p.AbortFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidTxnState));
            }
        };
        var name = "healing-" + Guid.NewGuid().ToString("N");
        long replacements = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == KafkaTxInstrumentation.Name && instrument.Name == "kafkatx.producer.replacements")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "kafkatx.producer" && Equals(tag.Value, name))
                {
                    Interlocked.Add(ref replacements, value);
                }
            }
        });
        listener.Start();
        using var instrumentation = new KafkaTxInstrumentation();
        await using var unit = new TransactionalUnitOfWork(name, TestUnits.Options(), factory, logger, instrumentation, TimeProvider.System);

        await unit.Awaiting(u => u.ExecuteAsync((_, _) => throw new InvalidDataException("bad input"))).Should().ThrowAsync<InvalidDataException>();

        Interlocked.Read(ref replacements).Should().Be(1);
        unit.ProducerReplacements.Should().Be(1);
        logger.Entries.Should().Contain(e => e.Id.Id == 20 && e.Level == Microsoft.Extensions.Logging.LogLevel.Warning
            && e.Message.Contains("AbortTransaction", StringComparison.Ordinal) && e.Message.Contains("InvalidTxnState", StringComparison.Ordinal));
    }
}
