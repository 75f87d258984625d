using System.Text;
using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing;

public class ProcessorLoopTests
{
    /// <summary>Transactions that stay open until the test acts: no size or time limit is reached.</summary>
    private static void KeepOpen(TransactionalProcessorOptions options)
    {
        options.MaxBatchSize = 100;
        options.MaxBatchDuration = TimeSpan.FromSeconds(20);
    }

    private static string[] Values(int count) => [.. Enumerable.Range(0, count).Select(i => "v" + i)];

    [Fact]
    public async Task A_transaction_commits_after_MaxBatchSize_records_with_the_consumer_positions()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 3;
            o.MaxBatchDuration = TimeSpan.FromSeconds(20);
        });
        h.Broker.AppendMany("in", 0, 6);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 6, "six records are committed");

        h.Factory.Current.CommittedOffsets.Select(o => o.Single().Offset.Value).Should().Equal(3L, 6L);
        h.CommittedOutput.Should().Equal(Values(6));
        h.Factory.Consumers.Single().Subscribed.Should().Equal("in");
    }

    [Fact]
    public async Task A_transaction_commits_after_MaxBatchDuration_even_when_not_full()
    {
        // The batch's age is read from a clock that moves only when the test says so: a busy machine cannot split
        // the two records into two transactions.
        var clock = new ManualClock();
        await using var h = new ProcessorHarness(
            o =>
            {
                o.MaxBatchSize = 1000;
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(50);
            },
            clock: clock);
        h.Broker.AppendMany("in", 0, 2);

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("v1") == 1, "both records are handled");
        h.Broker.GroupOffset(P0).Should().NotBe(2, "the batch is neither full nor old yet");

        clock.Advance(TimeSpan.FromMilliseconds(50));
        await Until(() => h.Broker.GroupOffset(P0) == 2, "the two records are committed");

        h.Factory.Current.CommittedOffsets.Should().ContainSingle().Which.Single().Offset.Value.Should().Be(2);
        h.CommittedOutput.Should().Equal("v0", "v1");
    }

    [Fact]
    public async Task After_a_handler_failure_the_transaction_is_aborted_and_every_partition_rewound_so_no_record_is_skipped()
    {
        await using var h = new ProcessorHarness(KeepOpen);
        h.Script.Fail = (value, seen) => value == "v2" && seen == 1;
        h.Broker.AppendMany("in", 0, 5);

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("v4") == 1, "the last record is handled");
        await h.StopAsync(); // commits the open transaction

        h.Script.Seen.Should().Equal("v0", "v1", "v2", "v0", "v1", "v2", "v3", "v4");
        h.Factory.Current.Aborted.Select(r => r.ValueText).Should().Equal("v0", "v1");
        h.CommittedOutput.Should().Equal(Values(5));
        h.Broker.GroupOffset(P0).Should().Be(5);
        h.Broker.EventsSnapshot().Should().ContainInOrder("abort", "seek:0@0"); // nothing committed: the first offset it read
    }

    [Fact]
    public async Task A_rewind_seeks_where_this_processor_committed_without_asking_the_group_and_fetches_only_partitions_it_has_not_committed()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 2;
            o.MaxBatchDuration = TimeSpan.FromSeconds(20);
        });
        h.Script.Fail = (value, seen) => value == "v3" && seen == 1;
        h.Broker.AppendMany("in", 0, 4);

        await h.StartAsync(P0, P1);
        await Until(() => h.Broker.GroupOffset(P0) == 4, "all four records are committed");

        // v0 and v1 committed P0 at 2; v3 failed, so the transaction of v2 and v3 was aborted and P0 rewound to 2.
        h.Broker.EventsSnapshot().Should().ContainInOrder("commit", "abort", "seek:0@2");
        h.Consumer.CommittedQueries.Should().ContainSingle("P1 has not been committed since it was assigned: only it is fetched")
            .Which.Should().Equal(P1);
        h.CommittedOutput.Should().Equal(Values(4));
    }

    [Fact]
    public async Task A_partition_assigned_again_is_fetched_from_the_group_since_another_member_may_have_committed_it()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 1;
            o.MaxBatchDuration = TimeSpan.FromSeconds(20);
        });
        h.Script.Fail = (value, seen) => value == "v2" && seen == 1;
        h.Broker.Append("in", 0, "k", "v0");
        h.Broker.Append("in", 0, "k", "v1");

        await h.StartAsync(P0);
        await Until(() => h.Broker.GroupOffset(P0) == 2, "two records are committed");
        h.Consumer.Rebalance("revoke", P0);
        h.Consumer.Rebalance("assign", P0);
        h.Broker.Append("in", 0, "k", "v2");
        await Until(() => h.Broker.GroupOffset(P0) == 3, "the third record is committed after its retry");

        h.Consumer.CommittedQueries.Should().ContainSingle().Which.Should().Equal(P0);
    }

    [Fact]
    public async Task The_consumer_joins_as_a_static_member_named_by_the_transactional_id_unless_turned_off()
    {
        await using (var h = new ProcessorHarness())
        {
            await h.StartAsync();
            h.Factory.ConsumerConfigs.Single().GroupInstanceId.Should().Be(h.Unit.TransactionalId);
        }

        await using (var h = new ProcessorHarness(o => o.StaticMembership = false))
        {
            await h.StartAsync();
            h.Factory.ConsumerConfigs.Single().GroupInstanceId.Should().BeNull();
        }
    }

    [Fact]
    public async Task A_record_failing_MaxAttempts_times_is_dead_lettered_in_the_same_transaction_as_its_offset()
    {
        await using var h = new ProcessorHarness(o =>
        {
            KeepOpen(o);
            o.Retry.MaxAttempts = 3;
        });
        h.Script.Fail = (value, _) => value == "v2";
        h.Broker.AppendMany("in", 0, 5);

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("v4") == 1, "the records after the poison one are handled");
        await h.StopAsync();

        h.Script.TimesSeen("v2").Should().Be(3);
        h.CommittedOutput.Should().Equal("v0", "v1", "v3", "v4");
        var deadLetter = h.CommittedTo("in.DLT").Should().ContainSingle().Subject;
        deadLetter.ValueText.Should().Be("v2");
        deadLetter.KeyText.Should().Be("k2");
        Header(deadLetter, DeadLetterHeaders.Topic).Should().Be("in");
        Header(deadLetter, DeadLetterHeaders.Partition).Should().Be("0");
        Header(deadLetter, DeadLetterHeaders.Offset).Should().Be("2");
        Header(deadLetter, DeadLetterHeaders.ErrorType).Should().Be(typeof(InvalidDataException).FullName);
        Header(deadLetter, DeadLetterHeaders.ErrorMessage).Should().Be("cannot handle v2");
        Header(deadLetter, DeadLetterHeaders.Attempts).Should().Be("3");

        // The dead-letter record and the offset past it were committed by one and the same commit.
        var producer = h.Factory.Current;
        producer.Committed.Select(r => r.ValueText).Should().ContainInOrder("v0", "v1", "v2", "v3", "v4");
        h.Broker.GroupOffset(P0).Should().Be(5);
    }

    [Fact]
    public async Task The_Skip_policy_commits_past_a_poison_record_without_output()
    {
        await using var h = new ProcessorHarness(o =>
        {
            KeepOpen(o);
            o.Retry.MaxAttempts = 2;
            o.PoisonRecordPolicy = PoisonRecordPolicy.Skip;
        });
        h.Script.Fail = (value, _) => value == "v1";
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("v2") == 1, "the last record is handled");
        await h.StopAsync();

        h.CommittedOutput.Should().Equal("v0", "v2");
        h.CommittedTo("in.DLT").Should().BeEmpty();
        h.Broker.GroupOffset(P0).Should().Be(3);
    }

    [Fact]
    public async Task The_Stop_policy_stops_the_processor_without_committing_past_the_poison_record()
    {
        await using var h = new ProcessorHarness(o =>
        {
            KeepOpen(o);
            o.Retry.MaxAttempts = 2;
            o.PoisonRecordPolicy = PoisonRecordPolicy.Stop;
        });
        h.Script.Fail = (value, _) => value == "v1";
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await h.Running!.WaitAsync(TimeSpan.FromSeconds(10));

        h.Loop.State.Should().Be(ProcessorState.Faulted);
        h.Loop.Failure!.Message.Should().Contain("in [0] @1").And.Contain("Stop");
        h.CommittedOutput.Should().BeEmpty();
        h.Broker.GroupOffset(P0).Should().BeNull();
        h.Consumer.IsClosed.Should().BeTrue();
    }

    [Fact]
    public async Task When_a_multi_record_commit_fails_the_records_are_retried_one_per_transaction_so_only_the_culprit_is_dead_lettered()
    {
        // The broker rejects the output of v1; which record caused it is not known when a three-record commit fails.
        var rejected = new Error(ErrorCode.MsgSizeTooLarge, "Broker: Message size too large");
        await using var h = new ProcessorHarness(
            o =>
            {
                o.MaxBatchSize = 100;
                o.MaxBatchDuration = TimeSpan.FromMilliseconds(200);
                o.Retry.MaxAttempts = 2;
            },
            setupProducer: p => p.DeliveryErrorFor = r => r.Topic == "out" && r.ValueText == "v1" ? rejected : null);
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 3, "all three records are committed");

        h.CommittedOutput.Should().Equal("v0", "v2");
        h.CommittedTo("in.DLT").Select(r => r.ValueText).Should().Equal("v1");
    }

    [Fact]
    public async Task A_dead_letter_topic_that_cannot_be_written_stops_the_processor_instead_of_looping()
    {
        var rejected = new Error(ErrorCode.TopicAuthorizationFailed, "Broker: Topic authorization failed");
        await using var h = new ProcessorHarness(
            o =>
            {
                o.MaxBatchSize = 1;
                o.Retry.MaxAttempts = 2;
            },
            setupProducer: p => p.DeliveryErrorFor = r => r.Topic == "in.DLT" ? rejected : null);
        h.Script.Fail = (value, _) => value == "v0";
        h.Broker.AppendMany("in", 0, 2);

        await h.StartAsync();
        await h.Running!.WaitAsync(TimeSpan.FromSeconds(10));

        h.Loop.State.Should().Be(ProcessorState.Faulted);
        h.Loop.Failure!.Message.Should().Contain("dead-letter topic 'in.DLT'").And.Contain("TopicAuthorizationFailed");
        h.Broker.GroupOffset(P0).Should().BeNull("nothing is committed past the poison record");
    }

    [Fact]
    public async Task A_revoke_during_an_open_transaction_commits_it_before_the_revoke_callback_returns()
    {
        await using var h = new ProcessorHarness(KeepOpen);
        h.Broker.AppendMany("in", 0, 2);
        h.Broker.AppendMany("in", 1, 2);

        await h.StartAsync(P0, P1);
        await Until(() => h.Script.Seen.Count == 4, "four records are handled in one open transaction");
        h.Broker.GroupOffset(P0).Should().BeNull("nothing is committed yet");
        h.Consumer.Rebalance("revoke", P1);
        await Until(() => h.Broker.EventsSnapshot().Contains("revoke-end"), "the revoke callback returns");

        var events = h.Broker.EventsSnapshot();
        events.Should().ContainInOrder("revoke-begin", "commit", "revoke-end");
        h.Broker.GroupOffset(P0).Should().Be(2, "the whole open transaction commits, not only the revoked partitions");
        h.CommittedOutput.Should().BeEquivalentTo("v0", "v1", "v0", "v1");
    }

    [Fact]
    public async Task Lost_partitions_abort_the_open_transaction_and_nothing_of_it_commits()
    {
        await using var h = new ProcessorHarness(KeepOpen);
        h.Broker.AppendMany("in", 0, 2);

        await h.StartAsync();
        await Until(() => h.Script.Seen.Count == 2, "two records are handled");
        h.Consumer.Rebalance("lost", P0);
        await Until(() => h.Factory.Current.CallCount("Abort") == 1, "the transaction is aborted");

        h.Broker.EventsSnapshot().Should().ContainInOrder("lost", "abort").And.NotContain("commit");
        h.Factory.Current.Aborted.Select(r => r.ValueText).Should().Equal("v0", "v1");

        // When the partition comes back, its records are processed again and committed once.
        h.Consumer.Rebalance("assign", P0);
        await Until(() => h.Script.Seen.Count == 4, "both records are handled again");
        await h.StopAsync();
        h.CommittedOutput.Should().Equal("v0", "v1");
    }

    [Fact]
    public async Task Shutdown_with_an_open_transaction_commits_it_and_closes_the_consumer()
    {
        await using var h = new ProcessorHarness(KeepOpen);
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await Until(() => h.Script.Seen.Count == 3, "three records are handled");
        await h.StopAsync();

        h.Broker.GroupOffset(P0).Should().Be(3);
        h.CommittedOutput.Should().Equal(Values(3));
        h.Broker.EventsSnapshot().Should().ContainInOrder("commit", "closed");
        h.Consumer.IsClosed.Should().BeTrue();
        h.Loop.State.Should().Be(ProcessorState.Stopped);
    }

    [Fact]
    public async Task A_shutdown_commit_that_outlives_ShutdownTimeout_is_settled_and_output_and_offsets_agree()
    {
        await using var h = new ProcessorHarness(o =>
        {
            KeepOpen(o);
            o.ShutdownTimeout = TimeSpan.FromMilliseconds(300);
        });
        h.Broker.AppendMany("in", 0, 2);

        await h.StartAsync();
        await Until(() => h.Script.Seen.Count == 2, "two records are handled");
        for (var i = 0; i < 50; i++)
        {
            h.Factory.Current.CommitFailures.Enqueue(KafkaErrors.TimedOut());
        }

        h.Factory.Current.OnBlockingCall = (call, _) => Thread.Sleep(call == "Commit" ? 20 : 0);
        await h.StopAsync();

        // The commit was sent before the drain ran out, so it is settled rather than abandoned: all of it, or none.
        h.Unit.State.Should().NotBe(TransactionState.Committing);
        if (h.CommittedOutput.Count == 0)
        {
            h.Broker.GroupOffset(P0).Should().BeNull();
        }
        else
        {
            h.CommittedOutput.Should().Equal("v0", "v1");
            h.Broker.GroupOffset(P0).Should().Be(2);
        }

        h.Consumer.IsClosed.Should().BeTrue();
    }

    [Fact]
    public async Task A_fenced_producer_stops_the_loop_at_once_and_nothing_more_is_written()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 2;
            o.MaxBatchDuration = TimeSpan.FromSeconds(20);
        }, setupProducer: p => p.CommitFailures.Enqueue(KafkaErrors.Fenced()));
        h.Broker.AppendMany("in", 0, 10);

        await h.StartAsync();
        await h.Running!.WaitAsync(TimeSpan.FromSeconds(10));

        h.Loop.State.Should().Be(ProcessorState.Fenced);
        h.Loop.Failure.Should().BeOfType<KafkaTransactionException>().Which.Kind.Should().Be(TransactionErrorKind.Fenced);
        h.Script.Seen.Should().HaveCount(2, "nothing is handled after the fencing");
        h.Factory.Producers.Should().ContainSingle("a fenced producer is never replaced");
        h.CommittedOutput.Should().BeEmpty();
        h.Consumer.IsClosed.Should().BeTrue();
    }

    [Fact]
    public async Task Fencing_reported_when_a_transaction_begins_stops_the_processor_as_fenced()
    {
        await using var h = new ProcessorHarness(setupProducer: p => p.BeginFailures.Enqueue(KafkaErrors.Fenced()));
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await h.Running!.WaitAsync(TimeSpan.FromSeconds(10));

        h.Loop.State.Should().Be(ProcessorState.Fenced);
        h.Script.Seen.Should().BeEmpty();
        h.Consumer.IsClosed.Should().BeTrue();
    }

    [Fact]
    public async Task A_fatal_error_replaces_the_producer_and_resumes_from_the_committed_offsets()
    {
        var producers = 0;
        await using var h = new ProcessorHarness(
            o =>
            {
                o.MaxBatchSize = 2;
                o.MaxBatchDuration = TimeSpan.FromSeconds(20);
            },
            setupProducer: p =>
            {
                if (++producers == 1)
                {
                    p.CommitFailures.Enqueue(KafkaErrors.Fatal(ErrorCode.InvalidTxnState));
                }
            });
        h.Broker.AppendMany("in", 0, 4);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 4, "all four records are committed");

        h.Factory.Producers.Should().HaveCount(2);
        h.Factory.Producers[0].IsDisposed.Should().BeTrue();
        h.Factory.Producers[1].Calls.Should().StartWith("Init");
        h.CommittedOutput.Should().Equal(Values(4));
        h.Loop.State.Should().Be(ProcessorState.Running);
        h.Consumer.CommittedQueries.Should().ContainSingle("the failed commit's outcome is unknown, so the group is asked")
            .Which.Should().Equal(P0);
    }

    [Fact]
    public async Task A_commit_that_times_out_is_settled_by_a_new_producer_before_the_group_is_asked_where_to_rewind()
    {
        // Without KIP-447 (brokers before 2.5) the group shows transactional offsets only once the coordinator has
        // written the markers; the new producer's InitTransactions returns only after that.
        var producers = 0;
        var clock = new ManualClock();
        await using var h = new ProcessorHarness(
            o =>
            {
                o.MaxBatchSize = 2;
                o.MaxBatchDuration = TimeSpan.FromSeconds(20);
            },
            producer: p => p.CommitTimeout = TimeSpan.FromSeconds(3),
            setupProducer: p =>
            {
                if (++producers == 1)
                {
                    for (var i = 0; i < 1000; i++)
                    {
                        p.CommitFailures.Enqueue(KafkaErrors.TimedOut());
                    }

                    p.OnBlockingCall = (call, timeout) =>
                    {
                        if (call == "Commit")
                        {
                            clock.Advance(timeout); // each slice of the commit times out in full
                        }
                    };
                }
            },
            clock: clock);
        h.Broker.AppendMany("in", 0, 4);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 4, "all four records are committed");

        h.Factory.Producers.Should().HaveCount(2);
        var events = h.Broker.EventsSnapshot();
        events.Should().ContainInOrder("init", "init", "committed-query");
        events.IndexOf("committed-query").Should().BeGreaterThan(events.LastIndexOf("init"), "the group is asked only after the new producer settled the pending commit");
        h.CommittedOutput.Should().Equal(Values(4));
        h.Loop.State.Should().Be(ProcessorState.Running);
    }

    [Fact]
    public async Task Fatal_errors_beyond_the_units_replacement_budget_stop_the_processor()
    {
        await using var h = new ProcessorHarness(
            o => o.MaxBatchSize = 1,
            producer: o => o.MaxProducerReplacements = 2,
            setupProducer: p => p.CommitFailures.Enqueue(KafkaErrors.Fatal()));
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        await h.Running!.WaitAsync(TimeSpan.FromSeconds(10));

        h.Loop.State.Should().Be(ProcessorState.Faulted);
        h.Factory.Producers.Should().HaveCount(3);
        h.CommittedOutput.Should().BeEmpty();
    }

    [Fact]
    public async Task Offsets_sent_follow_the_last_handled_record_and_group_metadata_is_read_at_each_send()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 2;
            o.MaxBatchDuration = TimeSpan.FromSeconds(20);
        });
        h.Broker.Append("in", 0, "k0", "v0");
        h.Broker.Append("in", 0, "k1", "v1", gapAfter: 1); // a commit marker follows: 2 is committed, the next read skips it
        h.Broker.Append("in", 0, "k3", "v3");
        h.Broker.Append("in", 0, "k4", "v4");

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 5, "both transactions commit");

        h.Factory.Current.CommittedOffsets.Select(o => o.Single().Offset.Value).Should().Equal(2L, 5L);
        h.CommittedOutput.Should().Equal("v0", "v1", "v3", "v4");
        h.Consumer.GroupMetadataReads.Should().Be(2);
    }

    [Fact]
    public async Task Records_that_arrive_while_the_processor_cannot_rewind_are_measured_as_stalled_until_it_consumes_them()
    {
        var clock = new ManualClock();
        await using var h = new ProcessorHarness(o => o.MaxBatchSize = 1, clock: clock);
        h.Script.Fail = (value, seen) => value == "v0" && seen == 1;
        h.Script.OnHandle = value => h.Consumer.FailCommittedQueries |= value == "v0"; // the rewind after v0's abort cannot ask the group where to go
        h.Broker.AppendMany("in", 0, 2);
        await h.StartAsync();
        await Until(() => h.Script.TimesSeen("v0") == 1 && h.Consumer.CommittedQueries.Count > 1, "the rewind keeps failing");
        h.Loop.StalledFor.Should().Be(TimeSpan.Zero, "nothing has arrived since");

        h.Broker.Append("in", 0, "k2", "v2");
        await Until(
            () =>
            {
                clock.Advance(TimeSpan.FromSeconds(1)); // lets the processor look again (at most once a second)
                return h.Loop.StalledFor > TimeSpan.Zero;
            },
            "the processor notices v2 waiting");
        clock.Advance(TimeSpan.FromSeconds(61));
        h.Loop.StalledFor.Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(61));

        h.Consumer.FailCommittedQueries = false;
        await Until(
            () =>
            {
                clock.Advance(TimeSpan.FromSeconds(1));
                return h.Loop.StalledFor == TimeSpan.Zero && h.Broker.GroupOffset(ProcessorHarness.P0) == 3;
            },
            "the processor rewinds, consumes v0 to v2, and is no longer stalled");
    }

    [Fact]
    public async Task Handled_records_waiting_for_a_commit_are_measured_for_health_checks_until_they_commit()
    {
        var clock = new ManualClock();
        await using var h = new ProcessorHarness(
            o =>
            {
                o.MaxBatchSize = 100;
                o.MaxBatchDuration = TimeSpan.FromMinutes(10);
            },
            producer: p => p.TransactionTimeout = TimeSpan.FromMinutes(30),
            clock: clock);
        h.Broker.AppendMany("in", 0, 3);

        await h.StartAsync();
        h.Loop.UncommittedFor.Should().Be(TimeSpan.Zero, "nothing is handled yet");
        await Until(() => h.Script.Seen.Count == 3, "three records are handled in one open transaction");
        clock.Advance(TimeSpan.FromSeconds(61));

        h.Loop.UncommittedFor.Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(61));

        await h.StopAsync(); // commits the open transaction
        h.Loop.UncommittedFor.Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public async Task A_transaction_approaching_the_transaction_timeout_is_committed_early()
    {
        var clock = new ManualClock();
        await using var h = new ProcessorHarness(
            o =>
            {
                o.MaxBatchSize = 100;
                o.MaxBatchDuration = TimeSpan.FromSeconds(20);
            },
            producer: p => p.TransactionTimeout = TimeSpan.FromSeconds(60),
            clock: clock);
        h.Script.OnHandle = value =>
        {
            if (value == "v0")
            {
                clock.Advance(TimeSpan.FromSeconds(31)); // a slow record
            }
        };
        h.Broker.AppendMany("in", 0, 1);

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 1, "the transaction commits early");

        h.CommittedOutput.Should().Equal("v0");
    }

    [Fact]
    public async Task A_record_that_cannot_be_deserialized_counts_as_a_failure_and_is_dead_lettered()
    {
        await using var h = new ProcessorHarness(o =>
        {
            o.MaxBatchSize = 100;
            o.MaxBatchDuration = TimeSpan.FromMilliseconds(100);
            o.Retry.MaxAttempts = 2;
        });
        h.Broker.Append("in", 0, "k0", "v0");
        h.Broker.Append("in", 0, null, null); // a null value for a string handler deserializes to null and fails the handler below
        h.Script.Fail = (value, _) => value is null;

        await h.StartAsync();
        await Until(() => h.Broker.GroupOffset(P0) == 2, "both records are committed");

        h.CommittedOutput.Should().Equal("v0");
        h.CommittedTo("in.DLT").Should().ContainSingle();
    }

    [Fact]
    public async Task The_consumer_is_configured_for_exactly_once()
    {
        await using var h = new ProcessorHarness();
        await h.StartAsync();

        var config = h.Factory.ConsumerConfigs.Single();
        config.IsolationLevel.Should().Be(IsolationLevel.ReadCommitted);
        config.EnableAutoCommit.Should().BeFalse();
        config.EnableAutoOffsetStore.Should().BeFalse();
        config.GroupId.Should().Be("group");
        config.PartitionAssignmentStrategy.Should().Be(PartitionAssignmentStrategy.CooperativeSticky);
        config.BootstrapServers.Should().Be("fake:9092");
    }

    [Fact]
    public async Task A_failure_mid_transaction_and_a_process_restart_still_yield_every_record_exactly_once()
    {
        // The ConsumeTransformProduce sample's scenario, on fakes that keep transactional offsets as Kafka does.
        var broker = new FakeBroker();
        await using (var first = new ProcessorHarness(o => o.MaxBatchSize = 3, broker: broker))
        {
            first.Script.Fail = (value, seen) => value == "v4" && seen == 1;
            broker.AppendMany("in", 0, 10);
            await first.StartAsync();
            await Until(() => broker.GroupOffset(P0) == 10, "the first process commits the first ten");
            await first.StopAsync();
            first.CommittedOutput.Should().Equal(Values(10));
        }

        for (var i = 10; i < 20; i++)
        {
            broker.Append("in", 0, $"k{i}", $"v{i}");
        }

        await using var second = new ProcessorHarness(o => o.MaxBatchSize = 3, broker: broker);
        await second.StartAsync();
        await Until(() => broker.GroupOffset(P0) == 20, "the restarted process commits the rest");

        second.Script.Seen.Should().Equal(Values(20).Skip(10), "the restart resumes from the committed offsets");
        second.CommittedOutput.Should().Equal(Values(20).Skip(10));
    }

    private static string Header(ProducedRecord record, string name) =>
        Encoding.UTF8.GetString(record.Headers!.GetLastBytes(name));
}
