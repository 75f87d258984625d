using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Telemetry;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.Logging.Abstractions;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.Telemetry;

/// <summary>The spans KafkaTx emits for transactions and processed batches, and the trace context it writes into records.</summary>
public sealed class TracingTests : IDisposable
{
    private readonly KafkaTxInstrumentation _instrumentation = new();
    private readonly FakeClientFactory _factory = new();

    public void Dispose() => _instrumentation.Dispose();

    private TransactionalUnitOfWork CreateUnit(Action<KafkaTransactionsOptions>? configure = null) =>
        new("orders", TestUnits.Options(configure), _factory, NullLogger.Instance, _instrumentation, TimeProvider.System);

    private static ValueTask WriteTwo(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("a", new Message<string, string> { Key = "k", Value = "1" });
        scope.Produce("b", new Message<string, string> { Key = "k", Value = "2" });
        return ValueTask.CompletedTask;
    }

    private static string TraceParentOf(ProducedRecord record) =>
        record.Headers is { } headers && headers.TryGetLastBytes("traceparent", out var bytes) ? Encoding.ASCII.GetString(bytes) : string.Empty;

    [Fact]
    public async Task A_committed_transaction_is_one_span_with_begin_and_commit_events_and_its_records_belong_to_it()
    {
        using var spans = new ActivityRecorder(_instrumentation.ActivitySource);
        await using var unit = CreateUnit();

        await unit.ExecuteAsync(WriteTwo);

        var span = spans.Stopped("kafkatx.transaction").Should().ContainSingle().Subject;
        span.Kind.Should().Be(ActivityKind.Producer);
        span.EventNames().Should().Equal("kafkatx.begin", "kafkatx.commit");
        span.Tag("kafkatx.transaction.outcome").Should().Be("committed");
        span.Tag("kafkatx.transaction.records").Should().Be(2);
        span.Tag("kafkatx.transactional_id").Should().Be(unit.TransactionalId);
        span.Tag("messaging.system").Should().Be("kafka");
        span.Status.Should().Be(ActivityStatusCode.Unset);
        _factory.Current.Committed.Select(TraceParentOf).Should().AllBe(span.Id, "records written inside the work carry the transaction span's context");
    }

    [Fact]
    public async Task Work_that_runs_again_after_an_abortable_commit_is_two_spans_the_first_aborted_with_its_error()
    {
        using var spans = new ActivityRecorder(_instrumentation.ActivitySource);
        await using var unit = CreateUnit();
        await unit.InitializeAsync();
        _factory.Current.CommitFailures.Enqueue(KafkaErrors.Abortable());
        using var caller = new Activity("caller").SetIdFormat(ActivityIdFormat.W3C).Start();

        await unit.ExecuteAsync(WriteTwo);

        var attempts = spans.Stopped("kafkatx.transaction");
        attempts.Select(s => s.Tag("kafkatx.transaction.outcome")).Should().Equal("aborted", "committed");
        attempts.Select(s => s.Tag("kafkatx.attempt")).Should().Equal(1, 2);
        attempts[0].EventNames().Should().Equal("kafkatx.begin", "exception", "kafkatx.abort");
        attempts[0].EventTag("exception", "kafkatx.error.kind").Should().Be("Abortable");
        attempts[0].EventTag("kafkatx.abort", "kafkatx.abort.reason").Should().Be("the commit failed with Local_Inconsistent");
        attempts.Select(s => s.ParentSpanId).Should().Equal([caller.SpanId, caller.SpanId], "both attempts belong to the caller's span");
    }

    [Fact]
    public async Task A_commit_that_hits_a_fatal_error_ends_its_span_with_an_unknown_outcome_and_the_replacement_is_traced_on_the_next()
    {
        using var spans = new ActivityRecorder(_instrumentation.ActivitySource);
        await using var unit = CreateUnit();
        await unit.InitializeAsync();
        _factory.Current.CommitFailures.Enqueue(KafkaErrors.Fatal());

        var failure = await unit.Awaiting(u => u.ExecuteAsync(WriteTwo)).Should().ThrowAsync<KafkaTransactionException>();
        await unit.ExecuteAsync(WriteTwo);

        failure.Which.Kind.Should().Be(TransactionErrorKind.OutcomeUnknown);
        var (first, second) = (spans.Stopped("kafkatx.transaction")[0], spans.Stopped("kafkatx.transaction")[1]);
        first.Tag("kafkatx.transaction.outcome").Should().Be("outcome_unknown");
        first.Status.Should().Be(ActivityStatusCode.Error);
        first.EventTag("exception", "kafkatx.error.kind").Should().Be("Fatal");
        first.EventTag("exception", "kafkatx.error.code").Should().Be("InvalidTxnState");
        second.Tag("kafkatx.transaction.outcome").Should().Be("committed");
        _factory.Producers.Should().HaveCount(2, "the producer was replaced");
    }

    [Fact]
    public async Task A_fenced_producer_ends_its_span_as_fenced_with_an_error_status()
    {
        using var spans = new ActivityRecorder(_instrumentation.ActivitySource);
        await using var unit = CreateUnit();
        await unit.InitializeAsync();
        _factory.Current.CommitFailures.Enqueue(KafkaErrors.Fenced());

        await unit.Awaiting(u => u.ExecuteAsync(WriteTwo)).Should().ThrowAsync<KafkaTransactionException>();

        var span = spans.Stopped("kafkatx.transaction").Should().ContainSingle().Subject;
        span.Tag("kafkatx.transaction.outcome").Should().Be("fenced");
        span.Status.Should().Be(ActivityStatusCode.Error);
        span.EventTag("exception", "kafkatx.error.kind").Should().Be("Fenced");
    }

    [Fact]
    public async Task An_explicit_transaction_is_a_span_that_does_not_become_the_callers_current_activity()
    {
        using var spans = new ActivityRecorder(_instrumentation.ActivitySource);
        await using var unit = CreateUnit();
        await unit.InitializeAsync();
        var before = Activity.Current;

        unit.BeginTransaction();
        var during = Activity.Current;
        unit.Produce("a", new Message<string, string> { Key = "k", Value = "1" });
        await unit.SendOffsetsAsync([new TopicPartitionOffset("in", 0, 5)], new FakeGroupMetadata());
        await unit.CommitAsync();

        during.Should().BeSameAs(before);
        Activity.Current.Should().BeSameAs(before);
        var span = spans.Stopped("kafkatx.transaction").Should().ContainSingle().Subject;
        span.EventNames().Should().Equal("kafkatx.begin", "kafkatx.send_offsets", "kafkatx.commit");
        span.EventTag("kafkatx.send_offsets", "kafkatx.offsets.partitions").Should().Be(1);
        TraceParentOf(_factory.Current.Committed.Single()).Should().Be(span.Id, "with no current activity, a record carries the transaction's context");
    }

    [Fact]
    public async Task A_traceparent_the_caller_set_is_kept_and_the_callers_headers_are_not_changed()
    {
        using var spans = new ActivityRecorder(_instrumentation.ActivitySource);
        await using var unit = CreateUnit();
        const string Theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        var headers = new Headers { { "traceparent", Encoding.ASCII.GetBytes(Theirs) } };
        var untraced = new Headers { { "tenant", Encoding.ASCII.GetBytes("acme") } };

        await unit.ExecuteAsync((tx, _) =>
        {
            tx.Produce("a", new Message<string, string> { Key = "1", Value = "v", Headers = headers });
            tx.Produce("a", new Message<string, string> { Key = "2", Value = "v", Headers = untraced });
            return ValueTask.CompletedTask;
        });

        var records = _factory.Current.Committed;
        TraceParentOf(records[0]).Should().Be(Theirs);
        TraceParentOf(records[1]).Should().Be(spans.Stopped("kafkatx.transaction").Single().Id);
        records[1].Headers!.Select(h => h.Key).Should().Equal("tenant", "traceparent");
        untraced.Should().ContainSingle("the caller's Headers object may be reused for other records, so it is copied, not changed");
    }

    [Fact]
    public async Task Without_a_listener_or_a_current_activity_no_span_is_created_and_no_header_is_added()
    {
        await using var unit = CreateUnit();
        Activity.Current.Should().BeNull();

        await unit.ExecuteAsync(WriteTwo);

        _factory.Current.Committed.Should().HaveCount(2).And.OnlyContain(r => r.Headers == null);
    }

    [Fact]
    public async Task A_processed_batch_is_a_span_holding_the_transaction_and_each_record_span_continues_the_records_own_trace()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 2;
            o.MaxBatchDuration = TimeSpan.FromSeconds(20);
        });
        using var spans = new ActivityRecorder(h.Instrumentation.ActivitySource);
        var upstream = ActivityContext.Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=1");
        h.Broker.Append("in", 0, "k0", "v0", headers: new Headers
        {
            { "traceparent", Encoding.ASCII.GetBytes("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") },
            { "tracestate", Encoding.ASCII.GetBytes("vendor=1") },
        });
        h.Broker.Append("in", 0, "k1", "v1");

        await h.StartAsync();
        await ProcessorHarness.Until(() => h.Broker.GroupOffset(ProcessorHarness.P0) == 2, "both records are committed");
        await ProcessorHarness.Until(() => spans.Stopped("kafkatx.batch").Count == 1, "the batch span ends");

        var batch = spans.Stopped("kafkatx.batch").Single();
        batch.Kind.Should().Be(ActivityKind.Consumer);
        batch.Tag("kafkatx.batch.outcome").Should().Be("committed");
        batch.Tag("messaging.batch.message_count").Should().Be(2);
        batch.Tag("messaging.consumer.group.name").Should().Be("group");
        spans.Stopped("kafkatx.transaction").Single().ParentSpanId.Should().Be(batch.SpanId, "the unit's transaction is the batch's child");

        var records = spans.Stopped("kafkatx.process");
        records.Should().HaveCount(2);
        var traced = records[0];
        traced.TraceId.Should().Be(upstream.TraceId, "the record carried its producer's trace");
        traced.ParentSpanId.Should().Be(upstream.SpanId);
        traced.TraceStateString.Should().Be("vendor=1");
        traced.Links.Select(l => l.Context.SpanId).Should().Equal(batch.SpanId);
        traced.Tag("messaging.destination.name").Should().Be("in");
        traced.Tag("messaging.destination.partition.id").Should().Be("0");
        traced.Tag("messaging.kafka.offset").Should().Be(0L);
        records[1].ParentSpanId.Should().Be(batch.SpanId, "a record without a trace is the batch's child");
        records[1].Links.Should().BeEmpty();

        var outputs = h.CommittedTo("out");
        TraceParentOf(outputs[0]).Should().Be(traced.Id, "the output belongs to the input's trace");
        TraceParentOf(outputs[1]).Should().Be(records[1].Id);
    }

    [Fact]
    public async Task A_record_the_handler_fails_on_ends_its_span_with_the_error_and_the_batch_as_aborted()
    {
        await using var h = new ProcessorHarness(o => o.MaxBatchSize = 1);
        using var spans = new ActivityRecorder(h.Instrumentation.ActivitySource);
        h.Script.Fail = (value, seen) => value == "v0" && seen == 1;
        h.Broker.AppendMany("in", 0, 1);

        await h.StartAsync();
        await ProcessorHarness.Until(() => h.Broker.GroupOffset(ProcessorHarness.P0) == 1, "the record is committed on its second try");
        await ProcessorHarness.Until(() => spans.Stopped("kafkatx.batch").Count == 2, "both batch spans end");

        spans.Stopped("kafkatx.batch").Select(b => b.Tag("kafkatx.batch.outcome")).Should().Equal("aborted", "committed");
        var failed = spans.Stopped("kafkatx.process")[0];
        failed.Status.Should().Be(ActivityStatusCode.Error);
        failed.EventNames().Should().Equal("exception");
    }
}
