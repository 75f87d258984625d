using System.Diagnostics;
using Confluent.Kafka;
using KafkaTx.Processing;
using KafkaTx.Tests.Fakes;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing;

/// <summary>
/// The everyday paths a deployment takes: a graceful stop with a handler in flight, transient transaction failures,
/// a stop during a commit. Handlers here honour their CancellationToken, as real ones do.
/// </summary>
public class ProcessorEverydayPathTests
{
    private static void KeepOpen(TransactionalProcessorOptions options)
    {
        options.MaxBatchSize = 1000;
        options.MaxBatchDuration = TimeSpan.FromMinutes(5);
    }

    private static string[] Values(int from, int count) => [.. Enumerable.Range(from, count).Select(i => "v" + i)];

    [Fact]
    public async Task A_stop_lets_the_handler_in_flight_finish_and_commits_exactly_the_handled_records()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var h = new ProcessorHarness(KeepOpen);
        h.Script.Await = (value, ct) =>
        {
            if (value != "v5")
            {
                return Task.CompletedTask;
            }

            entered.TrySetResult();
            return release.Task.WaitAsync(ct); // a call that honours the handler's token
        };
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var stopping = h.StopAsync();
        h.StopRequested.Should().BeTrue();
        h.Loop.State.Should().Be(ProcessorState.Running, "the handler in flight is still running");
        release.SetResult();
        await stopping;

        h.Script.Cancelled.Should().BeEmpty("ShutdownTimeout did not run out, so the handler's token was never cancelled");
        h.CommittedOutput.Should().Equal(Values(0, 6));
        h.Broker.GroupOffset(P0).Should().Be(6, "the offset after the last handled record, v5");
        h.Script.Seen.Should().NotContain("v6", "a stopping processor takes no new record");
        h.Loop.State.Should().Be(ProcessorState.Stopped);
        h.Consumer.IsClosed.Should().BeTrue();
    }

    [Fact]
    public async Task A_handler_cancelled_when_ShutdownTimeout_runs_out_aborts_the_batch_so_none_of_its_work_commits()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var h = new ProcessorHarness(o =>
        {
            KeepOpen(o);
            o.ShutdownTimeout = TimeSpan.FromMilliseconds(200);
        });
        h.Script.WriteBeforeAwait = true;
        h.Script.Await = (value, ct) =>
        {
            if (value != "v5")
            {
                return Task.CompletedTask;
            }

            entered.TrySetResult();
            return Task.Delay(Timeout.Infinite, ct); // never finishes unless cancelled
        };
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await h.StopAsync();

        h.Script.Cancelled.Should().Equal("v5");
        h.CommittedOutput.Should().BeEmpty("the batch whose handler was cancelled, its half-written v5 included, is aborted");
        h.Factory.Current.Aborted.Select(r => r.ValueText).Should().Contain("v5-first").And.NotContain("v5");
        h.Broker.GroupOffset(P0).Should().BeNull();
        h.Loop.State.Should().Be(ProcessorState.Stopped);
        h.Consumer.IsClosed.Should().BeTrue();
    }

    [Fact]
    public async Task After_a_graceful_stop_mid_handler_a_restart_copies_every_record_exactly_once_in_order()
    {
        var broker = new FakeBroker();
        broker.AppendMany("in", 0, 10);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new List<string?>();
        await using (var first = new ProcessorHarness(KeepOpen, broker: broker))
        {
            first.Script.WriteBeforeAwait = true;
            first.Script.Await = async (value, ct) =>
            {
                if (value == "v5")
                {
                    entered.TrySetResult();
                }

                await Task.Delay(1, ct);
            };
            await first.StartAsync();
            await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
            await first.StopAsync();
            output.AddRange(first.CommittedOutput);
            output.Should().NotBeEmpty("the handler in flight finished and its batch committed");
        }

        await using var second = new ProcessorHarness(o => o.MaxBatchSize = 3, broker: broker);
        second.Script.WriteBeforeAwait = true;
        second.Script.Await = (_, ct) => Task.Delay(1, ct);
        await second.StartAsync();
        await Until(() => broker.GroupOffset(P0) == 10, "the rest is copied");
        await second.StopAsync();
        output.AddRange(second.CommittedOutput);

        output.Should().Equal(Values(0, 10).SelectMany(v => new[] { v + "-first", v }), "every handler's two records, once each, in order");
    }

    [Fact]
    public async Task Abortable_commit_failures_retry_the_batch_without_counting_an_attempt_against_its_record()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 1;
            o.Retry.MaxAttempts = 3;
        }, setupProducer: p =>
        {
            for (var i = 0; i < 3; i++)
            {
                p.CommitFailures.Enqueue(KafkaErrors.Abortable()); // the transaction must be aborted: nothing the record did
            }
        });
        h.Broker.AppendMany("in", 0, 2);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 2, "both records commit once the coordinator is back");

        h.CommittedOutput.Should().Equal("v0", "v1");
        h.CommittedTo("in.DLT").Should().BeEmpty("the record never failed: the transaction did");
    }

    [Fact]
    public async Task Abortable_produce_failures_inside_the_handler_retry_without_dead_lettering_the_record()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 1;
            o.Retry.MaxAttempts = 3;
        }, setupProducer: p =>
        {
            for (var i = 0; i < 3; i++)
            {
                p.ProduceFailures.Enqueue(new ProduceException<byte[]?, byte[]?>(new Error(ErrorCode.Local_Inconsistent, "abortable"), new DeliveryResult<byte[]?, byte[]?>()));
            }
        });
        h.Broker.AppendMany("in", 0, 2);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 2, "both records commit");

        h.CommittedOutput.Should().Equal("v0", "v1");
        h.CommittedTo("in.DLT").Should().BeEmpty();
    }

    [Fact]
    public async Task A_record_whose_own_output_is_refused_is_still_dead_lettered_after_MaxAttempts()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 1;
            o.Retry.MaxAttempts = 2;
        }, setupProducer: p => p.DeliveryErrorFor = r => r.Topic == "out" && r.ValueText == "v0" ? new Error(ErrorCode.MsgSizeTooLarge) : null);
        h.Broker.AppendMany("in", 0, 2);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 2, "the poison record is dead-lettered and the next copied");

        h.CommittedOutput.Should().Equal("v1");
        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal("v0");
    }

    [Fact]
    public async Task A_stop_during_a_slow_commit_lets_it_complete_and_the_processor_stops_cleanly()
    {
        var committing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 3;
            o.ShutdownTimeout = TimeSpan.FromSeconds(10);
        }, setupProducer: p =>
        {
            p.CommitFailures.Enqueue(KafkaErrors.TimedOut()); // the first slice of the commit runs out: librdkafka resumes it
            p.OnBlockingCall = (call, _) =>
            {
                if (call == "Commit")
                {
                    committing.TrySetResult();
                    Thread.Sleep(300); // the blocking librdkafka call, slow
                }
            };
        });
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await committing.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await h.StopAsync();

        h.Running!.IsCompletedSuccessfully.Should().BeTrue();
        h.Loop.State.Should().Be(ProcessorState.Stopped);
        h.CommittedOutput.Should().Equal(Values(0, 3));
        h.Broker.GroupOffset(P0).Should().Be(3);
        h.Consumer.IsClosed.Should().BeTrue();
    }

    [Fact]
    public async Task Disposing_the_unit_while_the_shutdown_commit_runs_waits_for_it_instead_of_aborting_on_the_same_handle()
    {
        var committing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var h = new ProcessorHarness(KeepOpen, setupProducer: p => p.OnBlockingCall = (call, _) =>
        {
            if (call == "Commit")
            {
                committing.TrySetResult();
                Thread.Sleep(300); // the blocking librdkafka call, slow
            }
        });
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await Until(() => h.Script.Seen.Count == 3, "three records are handled");
        var stopping = h.StopAsync(); // the shutdown commits the open transaction
        await committing.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await h.Unit.DisposeAsync(); // as a host disposing its services while the processor still stops
        await stopping;

        h.Factory.Current.Overlaps.Should().BeEmpty("no two calls ever ran on one librdkafka handle at once");
        h.CommittedOutput.Should().Equal(Values(0, 3), "the commit in flight completed before the unit was disposed");
        h.Broker.GroupOffset(P0).Should().Be(3);
        h.Unit.State.Should().Be(TransactionState.Disposed);
    }

    [Fact]
    public async Task A_handler_stuck_on_a_full_producer_queue_is_released_when_ShutdownTimeout_runs_out_and_its_batch_aborts()
    {
        var queueFull = false;
        await using var h = new ProcessorHarness(o =>
        {
            KeepOpen(o);
            o.ShutdownTimeout = TimeSpan.FromMilliseconds(200);
        }, setupProducer: p => p.QueueFull = () => Volatile.Read(ref queueFull));
        h.Script.OnHandle = value =>
        {
            if (value == "v2")
            {
                Volatile.Write(ref queueFull, true); // from v2 on, librdkafka's local queue stays full
            }
        };
        h.Broker.AppendMany("in", 0, 5);

        await h.StartAsync();
        await Until(() => h.Factory.Current.QueueFullRefusals > 0, "v2's Produce waits for room in the queue");
        var stopped = Stopwatch.StartNew();
        await h.StopAsync();

        stopped.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10), "the wait stops at the drain deadline, not after DeliveryTimeout");
        h.CommittedOutput.Should().BeEmpty("the batch whose handler could not finish is aborted");
        h.Broker.GroupOffset(P0).Should().BeNull();
        h.Loop.State.Should().Be(ProcessorState.Stopped);
    }

    [Theory]
    [InlineData(300)] // longer than TransactionTimeout (60 s)
    [InlineData(48)]  // past three quarters of it, before the offsets are sent: not the coordinator's doing
    public async Task A_record_whose_handler_outlasts_the_transaction_timeout_counts_as_failing_and_is_dead_lettered_instead_of_looping(int handlerSeconds)
    {
        var clock = new ManualClock();
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 1;
            o.Retry.MaxAttempts = 2;
        }, clock: clock);
        h.Script.OnHandle = value =>
        {
            if (value == "v0")
            {
                clock.Advance(TimeSpan.FromSeconds(handlerSeconds));
            }
        };
        h.Broker.AppendMany("in", 0, 2);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 2, "v0 is dead-lettered and v1 copied");

        h.Script.TimesSeen("v0").Should().Be(2, "each expired transaction counted as one of v0's attempts");
        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal("v0");
        h.CommittedOutput.Should().Equal("v1");
    }

    [Fact]
    public async Task When_the_drain_runs_out_during_the_shutdown_commit_the_commit_is_settled_before_the_consumer_leaves()
    {
        var committing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var h = new ProcessorHarness(o =>
        {
            KeepOpen(o);
            o.ShutdownTimeout = TimeSpan.FromMilliseconds(200);
        }, setupProducer: p =>
        {
            p.OnBlockingCall = (call, _) =>
            {
                if (call == "Commit")
                {
                    committing.TrySetResult();
                    Thread.Sleep(150); // each slice of the commit is slow and times out: librdkafka resumes it
                }
            };
            for (var i = 0; i < 5; i++)
            {
                p.CommitFailures.Enqueue(KafkaErrors.TimedOut());
            }
        });
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await Until(() => h.Script.Seen.Count == 3, "three records are handled");
        await h.StopAsync();

        h.Unit.State.Should().BeOneOf(TransactionState.Ready, TransactionState.Uninitialized);
        h.Unit.State.Should().NotBe(TransactionState.Committing, "no commit is left pending for the partitions' next owner");
        h.Loop.State.Should().Be(ProcessorState.Stopped);
        h.Consumer.IsClosed.Should().BeTrue();
        committing.Task.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public async Task The_loop_and_its_blocking_calls_run_on_a_thread_of_their_own_and_handlers_run_without_its_context()
    {
        await using var h = new ProcessorHarness(o => o.MaxBatchSize = 5);
        h.Script.Await = async (_, ct) => await Task.Delay(1, ct);
        h.Broker.AppendMany("in", 0, 20);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 20, "every record is copied");
        await h.StopAsync();

        h.Consumer.ConsumeThreads.Should().ContainSingle("every Consume ran on the processor's thread, after every await")
            .Which.Value.Should().BeFalse("that thread is not the thread pool's");
        h.Script.SawSynchronizationContext.Should().BeFalse("handlers see no synchronization context, as in ASP.NET Core");
    }
}
