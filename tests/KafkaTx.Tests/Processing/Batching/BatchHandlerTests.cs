using System.Text;
using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing.Batching;

/// <summary>
/// A batch handler gets a transaction's records in one call; when a call fails, the batch is tried once more whole,
/// then in halves, so that only a poison record is charged and dead-lettered, and every other record commits once.
/// </summary>
public class BatchHandlerTests
{
    /// <summary>A processor over fakes whose handler is <see cref="BatchCopyHandler"/>, run by <paramref name="script"/>.</summary>
    internal static ProcessorHarness BatchProcessor(BatchScript script, Action<TransactionalProcessorOptions>? configure = null, Action<FakeProducer>? setupProducer = null, TimeProvider? clock = null) =>
        new(
            o =>
            {
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(500); // a batch is due when full, or the tail after this
                configure?.Invoke(o);
            },
            setupProducer: setupProducer,
            clock: clock,
            services: s => s.AddSingleton(script).AddScoped<BatchCopyHandler>(),
            handler: typeof(BatchCopyHandler));

    internal static string[] Values(int from, int count) => [.. Enumerable.Range(from, count).Select(i => "v" + i)];

    [Fact]
    public async Task The_records_of_a_transaction_arrive_in_one_call_and_commit_together_with_their_offsets()
    {
        var script = new BatchScript();
        await using var h = BatchProcessor(script, o => o.MaxBatchSize = 5);
        h.Broker.AppendMany("in", 0, 5);

        await h.StartAsync();
        // The group offset lands with the broker commit; the loop counts the commit just after it returns.
        await Until(() => h.Broker.GroupOffset(P0) == 5 && h.Loop.CommittedTransactions >= 1, "the batch commits");

        script.Calls.Should().ContainSingle().Which.Should().Equal(Values(0, 5));
        h.CommittedOutput.Should().Equal(Values(0, 5));
        h.Loop.CommittedTransactions.Should().Be(1);
        script.SawSynchronizationContext.Should().BeFalse("the handler runs without the processor thread's context");
    }

    [Theory]
    [InlineData(16, 9)]
    [InlineData(64, 37)]
    [InlineData(256, 200)]
    public async Task A_poison_record_in_the_middle_of_a_batch_is_the_only_one_dead_lettered_and_every_other_record_commits_once(int records, int poison)
    {
        const int MaxAttempts = 3;
        var script = new BatchScript { Fail = (values, _) => values.Contains("v" + poison) };
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = records;
            o.Retry.MaxAttempts = MaxAttempts;
        });
        h.Broker.AppendMany("in", 0, records);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == records, "every record is committed or dead-lettered", 30);

        var deadLettered = h.CommittedTo("in.DLT").Should().ContainSingle().Subject;
        deadLettered.ValueText.Should().Be("v" + poison);
        Text(deadLettered.Headers!.GetLastBytes(DeadLetterHeaders.Attempts)).Should().Be("3");
        h.CommittedOutput.Should().BeEquivalentTo(Values(0, records).Where(v => v != "v" + poison), "each good record commits exactly once");
        script.Calls.Where(c => c.Length == 1 && c[0] == "v" + poison).Should().HaveCount(MaxAttempts, "only the poison record, alone, is charged");

        // Twice whole, a halving per level down to one record (each may take a commit and a failure), MaxAttempts
        // alone, then doubling back: about 3 log2(N) + MaxAttempts; record by record would take N + MaxAttempts.
        var log2 = (int)Math.Log2(records);
        script.CallCount.Should().BeLessThanOrEqualTo((3 * log2) + MaxAttempts + 2, $"calls: {string.Join(" ", script.Calls.Select(c => c.Length))}");
    }

    [Fact]
    public async Task A_failing_batch_is_tried_once_more_whole_then_in_halves_down_to_one_record()
    {
        var script = new BatchScript { Fail = (values, _) => values.Contains("v0") };
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = 8;
            o.Retry.MaxAttempts = 1;
        });
        h.Broker.AppendMany("in", 0, 8);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 8, "every record is committed or dead-lettered");

        script.Calls.Take(5).Select(c => c.Length).Should().Equal([8, 8, 4, 2, 1], "whole, whole again, then halves");
        script.Calls.Skip(5).Should().NotContain(c => c.Contains("v0"), "with MaxAttempts 1, v0 failing alone once made it poison: never handed over again");
        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal("v0");
        h.CommittedOutput.Should().Equal(Values(1, 7));
    }

    [Fact]
    public async Task A_batch_failing_once_for_a_transient_cause_passes_on_its_whole_retry_and_nobody_is_charged()
    {
        // MaxAttempts 1: a single charge would dead-letter a record at once.
        var script = new BatchScript { Fail = (_, call) => call == 1 };
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = 10;
            o.Retry.MaxAttempts = 1;
        });
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 10, "the batch commits on its retry");

        script.Calls.Should().HaveCount(2).And.AllSatisfy(c => c.Should().Equal(Values(0, 10)));
        h.CommittedTo("in.DLT").Should().BeEmpty();
        h.CommittedOutput.Should().Equal(Values(0, 10), "the failed call's copies were aborted with its transaction");
        h.Factory.Producers.SelectMany(p => p.Aborted).Select(r => r.ValueText).Should().Equal(Values(0, 10));
    }

    [Fact]
    public async Task Abortable_commit_failures_retry_the_whole_batch_without_charging_or_splitting_it()
    {
        var script = new BatchScript();
        await using var h = BatchProcessor(
            script,
            o =>
            {
                o.MaxBatchSize = 10;
                o.Retry.MaxAttempts = 1;
            },
            setupProducer: p =>
            {
                p.CommitFailures.Enqueue(KafkaErrors.Abortable());
                p.CommitFailures.Enqueue(KafkaErrors.Abortable());
            });
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 10, "the batch commits once the coordinator is back");

        script.Calls.Should().HaveCount(3).And.AllSatisfy(c => c.Should().Equal(Values(0, 10)), "the transaction failed, not a record");
        h.CommittedTo("in.DLT").Should().BeEmpty();
        h.CommittedOutput.Should().Equal(Values(0, 10));
    }

    [Fact]
    public async Task An_abortable_failure_inside_the_call_retries_the_whole_batch_without_charging_or_splitting_it()
    {
        var script = new BatchScript();
        await using var h = BatchProcessor(
            script,
            o =>
            {
                o.MaxBatchSize = 10;
                o.Retry.MaxAttempts = 1;
            },
            setupProducer: p =>
            {
                for (var i = 0; i < 3; i++)
                {
                    p.ProduceFailures.Enqueue(new ProduceException<byte[]?, byte[]?>(new Error(ErrorCode.Local_Inconsistent, "abortable"), new DeliveryResult<byte[]?, byte[]?>()));
                }
            });
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 10, "the batch commits");

        script.Calls.Should().HaveCountGreaterThan(1).And.AllSatisfy(c => c.Should().HaveCount(10), "a transaction failure never splits the batch");
        h.CommittedTo("in.DLT").Should().BeEmpty("the transaction failed under the handler: no record's fault");
        h.CommittedOutput.Should().Equal(Values(0, 10));
    }

    [Fact]
    public async Task A_record_the_deserializer_refuses_is_charged_alone_and_dead_lettered_while_the_rest_of_its_batch_commits()
    {
        var script = new BatchScript();
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = 4;
            o.Retry.MaxAttempts = 2;
            o.Deserializers.Add<string>(new RefusingDeserializer("v2"));
        });
        h.Broker.AppendMany("in", 0, 4);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 4, "every record is committed or dead-lettered");

        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal("v2");
        h.CommittedOutput.Should().Equal("v0", "v1", "v3");
        script.Calls.Should().ContainSingle("a record that cannot be read is known at fault: no call, no bisection")
            .Which.Should().Equal("v0", "v1", "v3");
    }

    [Fact]
    public async Task With_the_Stop_policy_the_processor_stops_at_the_poison_record_after_committing_the_records_before_it()
    {
        var script = new BatchScript { Fail = (values, _) => values.Contains("v2") };
        await using var h = BatchProcessor(script, o =>
        {
            o.MaxBatchSize = 4;
            o.Retry.MaxAttempts = 1;
            o.PoisonRecordPolicy = PoisonRecordPolicy.Stop;
        });
        h.Broker.AppendMany("in", 0, 4);

        await h.StartAsync();
        await Until(() => h.Loop.State == ProcessorState.Faulted, "the processor stops at v2");

        h.Loop.Failure!.Message.Should().Contain("in [0] @2");
        h.CommittedOutput.Should().Equal("v0", "v1");
        h.Broker.GroupOffset(P0).Should().Be(2, "nothing is committed past the poison record");
    }

    [Fact]
    public async Task A_dead_letter_write_that_fails_after_another_poison_record_was_dead_lettered_commits_nothing_past_the_records_not_handled_yet()
    {
        // The poison records of a batch meet their policy before the handler gets the others: a dead-letter write
        // refused after one succeeded made the processor stop with the batch open, and the stop committed it, with
        // the offset past v1 while v0, before it, had never been handled (lost).
        var script = new BatchScript();
        var deadLetterWrites = 0;
        await using var h = BatchProcessor(
            script,
            o =>
            {
                o.MaxBatchSize = 4;
                o.Retry.MaxAttempts = 1;
                o.Deserializers.Add<string>(new RefusingDeserializer("v1", "v2"));
            },
            setupProducer: p => p.QueueFull = () =>
            {
                if (Interlocked.Increment(ref deadLetterWrites) == 2)
                {
                    p.ProduceFailures.Enqueue(new ProduceException<byte[]?, byte[]?>(new Error(ErrorCode.MsgSizeTooLarge, "Broker: Message size too large"), new DeliveryResult<byte[]?, byte[]?>()));
                }

                return false;
            });
        h.Broker.AppendMany("in", 0, 4);

        await h.StartAsync();
        await Until(() => h.Running!.IsCompleted, "the processor stops on the refused dead-letter write");

        h.Loop.State.Should().Be(ProcessorState.Faulted);
        script.Calls.Should().BeEmpty("the handler never got v0 and v3");
        h.Broker.GroupOffset(P0).Should().BeNull("nothing was handled: no offset may commit");
        h.CommittedTo("in.DLT").Should().BeEmpty("the batch aborted");
    }

    /// <summary>Refuses the given values, as a schema mismatch would; passes the others on as UTF-8.</summary>
    private sealed class RefusingDeserializer(params string[] refused) : IDeserializer<string>
    {
        public string Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context)
        {
            var text = isNull ? null! : Encoding.UTF8.GetString(data);
            return context.Component == MessageComponentType.Value && refused.Contains(text) ? throw new InvalidDataException("unreadable " + text) : text;
        }
    }
}
