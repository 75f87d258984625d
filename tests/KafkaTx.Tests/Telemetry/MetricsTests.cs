using Confluent.Kafka;
using KafkaTx.Telemetry;
using KafkaTx.Testing.Shared;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.Logging.Abstractions;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.Telemetry;

/// <summary>The values KafkaTx's meter records for commits, aborts, fencing, faults and processed batches.</summary>
public class MetricsTests
{
    private static (TransactionalUnitOfWork Unit, FakeClientFactory Factory, MetricsRecorder Metrics, KafkaTxInstrumentation Instrumentation) Create(Action<KafkaTransactionsOptions>? configure = null)
    {
        var instrumentation = new KafkaTxInstrumentation();
        var metrics = new MetricsRecorder(instrumentation);
        var factory = new FakeClientFactory();
        var unit = new TransactionalUnitOfWork("orders", TestUnits.Options(configure), factory, NullLogger.Instance, instrumentation, TimeProvider.System);
        return (unit, factory, metrics, instrumentation);
    }

    private static ValueTask WriteTwo(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("a", new Message<string, string> { Key = "k", Value = "1" });
        scope.Produce("b", new Message<string, string> { Key = "k", Value = "2" });
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_commit_records_its_records_its_duration_and_its_outcome_tagged_with_the_producer()
    {
        var (unit, _, metrics, instrumentation) = Create();
        using var __ = metrics;
        using var ___ = instrumentation;
        await using var ____ = unit;

        await unit.ExecuteAsync(WriteTwo);

        metrics.Sum("kafkatx.transactions.committed").Should().Be(1);
        metrics.Values("kafkatx.transaction.records").Should().Equal(2);
        metrics.Values("kafkatx.transaction.duration", "kafkatx.transaction.outcome", "committed").Should().ContainSingle().Which.Should().BeGreaterThanOrEqualTo(0);
        metrics.LastTags("kafkatx.transaction.records")["kafkatx.producer"].Should().Be("orders");
    }

    [Fact]
    public async Task An_abort_with_a_retry_records_one_abort_one_retry_and_one_commit()
    {
        var (unit, factory, metrics, instrumentation) = Create(o => o.Retry.BaseDelay = TimeSpan.Zero);
        using var __ = metrics;
        using var ___ = instrumentation;
        await using var ____ = unit;
        await unit.InitializeAsync();
        factory.Current.CommitFailures.Enqueue(KafkaErrors.Abortable());

        await unit.ExecuteAsync(WriteTwo);

        metrics.Sum("kafkatx.transactions.aborted").Should().Be(1);
        metrics.Sum("kafkatx.transactions.retried").Should().Be(1);
        metrics.Sum("kafkatx.transactions.committed").Should().Be(1);
        metrics.Values("kafkatx.transaction.duration", "kafkatx.transaction.outcome", "aborted").Should().ContainSingle();
        metrics.Values("kafkatx.transactions.failed", "kafkatx.error.kind", "Abortable").Should().ContainSingle();
    }

    [Fact]
    public async Task Fencing_and_faulting_are_counted()
    {
        var (fencedUnit, fencedFactory, metrics, instrumentation) = Create(o => o.MaxProducerReplacements = 0);
        using var __ = metrics;
        using var ___ = instrumentation;
        await using var ____ = fencedUnit;
        await fencedUnit.InitializeAsync();
        fencedFactory.Current.CommitFailures.Enqueue(KafkaErrors.Fenced());
        await fencedUnit.Awaiting(u => u.ExecuteAsync(WriteTwo)).Should().ThrowAsync<KafkaTransactionException>();

        var faultedFactory = new FakeClientFactory();
        await using var faultedUnit = new TransactionalUnitOfWork("payments", TestUnits.Options(o => o.MaxProducerReplacements = 0), faultedFactory, NullLogger.Instance, instrumentation, TimeProvider.System);
        await faultedUnit.InitializeAsync();
        faultedFactory.Current.CommitFailures.Enqueue(KafkaErrors.Fatal());
        await faultedUnit.Awaiting(u => u.ExecuteAsync(WriteTwo)).Should().ThrowAsync<KafkaTransactionException>();

        metrics.Values("kafkatx.producer.fenced", "kafkatx.producer", "orders").Should().Equal(1);
        metrics.Values("kafkatx.producer.faulted", "kafkatx.producer", "payments").Should().Equal(1);
    }

    [Fact]
    public async Task A_processed_batch_counts_records_handled_a_batch_committed_and_a_rewind_after_a_failure()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 3;
            o.MaxBatchDuration = TimeSpan.FromSeconds(20);
        });
        using var metrics = new MetricsRecorder(h.Instrumentation);
        h.Script.Fail = (value, seen) => value == "v1" && seen == 1;
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        // The batch is counted once the commit has returned to the processor's thread, a moment after the broker has it.
        await ProcessorHarness.Until(() => h.Broker.GroupOffset(ProcessorHarness.P0) == 3 && metrics.Sum("kafkatx.processor.batches.committed") >= 1, "the three records are committed");

        metrics.Sum("kafkatx.processor.batches.committed").Should().Be(1);
        metrics.Sum("kafkatx.processor.records.handled").Should().Be(4, "v0 twice (before and after the rewind), v1 and v2 once each");
        metrics.Sum("kafkatx.processor.rewinds").Should().Be(1);
        var tags = metrics.LastTags("kafkatx.processor.batches.committed");
        tags["messaging.system"].Should().Be("kafka");
        tags["messaging.consumer.group.name"].Should().Be("group");
        tags["kafkatx.producer"].Should().Be("orders");
    }

    [Fact]
    public async Task Consumer_lag_is_observed_per_assigned_partition_and_falls_to_zero_once_the_processor_has_caught_up()
    {
        using var handlerMayGoOn = new SemaphoreSlim(0);
        await using var h = new ProcessorHarness(
            o =>
            {
                o.MaxBatchSize = 100;
                o.MaxBatchDuration = TimeSpan.FromSeconds(20);
            },
            clock: new ManualClock()); // a clock that stands still refreshes the lag at every step
        using var metrics = new MetricsRecorder(h.Instrumentation);
        h.Script.OnHandle = value =>
        {
            if (value == "v4")
            {
                handlerMayGoOn.Wait();
            }
        };
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await ProcessorHarness.Until(() => h.Script.Seen.Contains("v4"), "the handler holds the fifth record");
        var held = metrics.Observe("kafkatx.processor.consumer.lag").Should().ContainSingle().Subject;
        handlerMayGoOn.Release();
        await ProcessorHarness.Until(() => metrics.Observe("kafkatx.processor.consumer.lag") is [{ Value: 0 }], "the lag falls to zero");
        await h.StopAsync();

        held.Value.Should().Be(6, "ten records, and the position after the fourth was handled is 4");
        held.Tags["messaging.destination.name"].Should().Be("in");
        held.Tags["messaging.destination.partition.id"].Should().Be("0");
        held.Tags["messaging.consumer.group.name"].Should().Be("group");
        metrics.Observe("kafkatx.processor.consumer.lag").Should().BeEmpty("a stopped processor reports no lag");
    }

    [Fact]
    public async Task A_poison_record_is_counted_as_dead_lettered()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 1;
            o.Retry.MaxAttempts = 2;
        });
        using var metrics = new MetricsRecorder(h.Instrumentation);
        h.Script.Fail = (value, _) => value == "v0";
        h.Broker.AppendMany("in", 0, 2);

        await h.StartAsync();
        await ProcessorHarness.Until(() => h.Broker.GroupOffset(ProcessorHarness.P0) == 2, "both records are past");

        metrics.Sum("kafkatx.processor.records.dead_lettered").Should().Be(1);
        metrics.Sum("kafkatx.processor.records.skipped").Should().Be(0);
    }
}
