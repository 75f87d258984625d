using Confluent.Kafka;
using KafkaTx.IntegrationTests.Support;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// Every row of docs/error-handling.md, produced by the real client: librdkafka's mock cluster answers a request with
/// the injected error, Confluent.Kafka raises what it raises, and KafkaTx must classify it and react as documented.
/// </summary>
public sealed class ErrorMatrixTests : IDisposable
{
    private readonly MockKafkaCluster _cluster = new();

    public void Dispose() => _cluster.Dispose();

    public static TheoryData<KafkaApi, ErrorCode, TransactionErrorKind, TransactionState> FailingRows => new()
    {
        { KafkaApi.EndTxn, ErrorCode.ProducerFenced, TransactionErrorKind.Fenced, TransactionState.Fenced },
        { KafkaApi.EndTxn, ErrorCode.InvalidProducerEpoch, TransactionErrorKind.Fenced, TransactionState.Fenced },
        { KafkaApi.EndTxn, ErrorCode.InvalidTxnState, TransactionErrorKind.OutcomeUnknown, TransactionState.Ready }, // fatal: the producer is replaced
        { KafkaApi.EndTxn, ErrorCode.TransactionalIdAuthorizationFailed, TransactionErrorKind.Fatal, TransactionState.Faulted },
        { KafkaApi.EndTxn, ErrorCode.TransactionCoordinatorFenced, TransactionErrorKind.Abortable, TransactionState.Ready },
        { KafkaApi.EndTxn, ErrorCode.Unknown, TransactionErrorKind.Abortable, TransactionState.Ready },
        { KafkaApi.AddPartitionsToTxn, ErrorCode.ProducerFenced, TransactionErrorKind.Fenced, TransactionState.Fenced },
        { KafkaApi.AddPartitionsToTxn, ErrorCode.InvalidProducerEpoch, TransactionErrorKind.Fenced, TransactionState.Fenced },
        { KafkaApi.AddPartitionsToTxn, ErrorCode.TopicAuthorizationFailed, TransactionErrorKind.Rejected, TransactionState.Ready },
        { KafkaApi.Produce, ErrorCode.ProducerFenced, TransactionErrorKind.Fenced, TransactionState.Fenced },
        { KafkaApi.Produce, ErrorCode.InvalidProducerEpoch, TransactionErrorKind.Fenced, TransactionState.Fenced },
        { KafkaApi.Produce, ErrorCode.OutOfOrderSequenceNumber, TransactionErrorKind.Abortable, TransactionState.Ready }, // fatal: the producer is replaced
        { KafkaApi.Produce, ErrorCode.MsgSizeTooLarge, TransactionErrorKind.Rejected, TransactionState.Ready },
        { KafkaApi.Produce, ErrorCode.RecordListTooLarge, TransactionErrorKind.Rejected, TransactionState.Ready },
        { KafkaApi.Produce, ErrorCode.InvalidRecord, TransactionErrorKind.Rejected, TransactionState.Ready },
        { KafkaApi.Produce, ErrorCode.TopicAuthorizationFailed, TransactionErrorKind.Rejected, TransactionState.Ready },
    };

    [Theory]
    [InlineData(ErrorCode.MsgSizeTooLarge)]
    [InlineData(ErrorCode.TopicAuthorizationFailed)]
    public async Task Without_delivery_tracking_a_refused_record_still_fails_the_commit_as_Rejected_and_the_unit_goes_on(ErrorCode injected)
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("untracked"), o =>
        {
            o.Retry.MaxAttempts = 1;
            o.DeliveryTracking = DeliveryTracking.None;
        });
        await host.Unit.InitializeAsync();

        var failure = await host.Unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            _cluster.PushRequestErrors(KafkaApi.Produce, injected);
            scope.Produce("untracked-topic", new Message<string, string> { Key = "k", Value = "refused" });
            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected, "the commit's own error carries the record's");
        failure.Which.Error.Code.Should().Be(injected);
        failure.Which.FailedDeliveries.Should().BeEmpty("no delivery report was built");
        host.Unit.State.Should().Be(TransactionState.Ready);
        await host.Unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("untracked-next", new Message<string, string> { Key = "k", Value = "next" });
            return ValueTask.CompletedTask;
        });
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, TimeSpan.FromSeconds(30), "untracked-next").Select(r => r.Value).Should().Equal("next");
    }

    [Fact]
    public async Task Tracking_the_first_record_per_topic_names_the_topic_of_a_refused_batch()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("first-tracked"), o =>
        {
            o.Retry.MaxAttempts = 1;
            o.DeliveryTracking = DeliveryTracking.FirstRecordPerTopic;
        });
        await host.Unit.InitializeAsync();

        var failure = await host.Unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            _cluster.PushRequestErrors(KafkaApi.Produce, ErrorCode.TopicAuthorizationFailed);
            for (var i = 0; i < 20; i++)
            {
                scope.Produce("first-tracked-topic", new Message<string, string> { Key = "k", Value = "refused" });
            }

            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        failure.Which.FailedDeliveries.Should().ContainSingle("one record of the topic is tracked").Which.TopicPartition.Topic.Should().Be("first-tracked-topic");
        failure.Which.Message.Should().Contain("first-tracked-topic");
        host.Unit.State.Should().Be(TransactionState.Ready);
    }

    [Theory]
    [MemberData(nameof(FailingRows))]
    public async Task An_injected_error_is_classified_and_handled(KafkaApi api, ErrorCode injected, TransactionErrorKind expectedKind, TransactionState expectedState)
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("matrix"), o => o.Retry.MaxAttempts = 1);
        await host.Unit.InitializeAsync();
        var runs = 0;

        var failure = await host.Unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            runs++;
            _cluster.PushRequestErrors(api, injected);

            scope.Produce("matrix-topic", new Message<string, string> { Key = "k", Value = "v" });
            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(expectedKind);
        host.Unit.State.Should().Be(expectedState);
        failure.Which.State.Should().Be(expectedState);
        runs.Should().Be(1);
        if (expectedKind == TransactionErrorKind.Rejected && api == KafkaApi.Produce)
        {
            failure.Which.FailedDeliveries.Should().NotBeEmpty();
            failure.Which.FailedDeliveries.Should().AllSatisfy(f => f.TopicPartition.Topic.Should().Be("matrix-topic"));
            failure.Which.FailedDeliveries[0].Error.Code.Should().Be(injected);
            failure.Which.Message.Should().Contain("matrix-topic");
        }

        // A unit left Ready goes on working. (Another topic: after a topic authorization failure librdkafka refuses
        // that topic at once, and after a rejected record the mock, unlike a broker, does not reset the partition's
        // idempotence sequence on the epoch bump; the real-broker suite covers the same partition.)
        if (expectedState == TransactionState.Ready)
        {
            await host.Unit.ExecuteAsync((scope, _) =>
            {
                scope.Produce("matrix-after", new Message<string, string> { Key = "k", Value = "after" });
                return ValueTask.CompletedTask;
            });
        }
    }

    public static TheoryData<KafkaApi, ErrorCode> AbsorbedRows => new()
    {
        { KafkaApi.EndTxn, ErrorCode.ConcurrentTransactions },
        { KafkaApi.EndTxn, ErrorCode.NotCoordinatorForGroup },
        { KafkaApi.EndTxn, ErrorCode.GroupLoadInProgress },
        { KafkaApi.EndTxn, ErrorCode.GroupCoordinatorNotAvailable },
        { KafkaApi.AddPartitionsToTxn, ErrorCode.ConcurrentTransactions },
        { KafkaApi.InitProducerId, ErrorCode.GroupLoadInProgress },
        { KafkaApi.AddOffsetsToTxn, ErrorCode.ConcurrentTransactions },
        { KafkaApi.TxnOffsetCommit, ErrorCode.NotCoordinatorForGroup },
    };

    [Theory]
    [MemberData(nameof(AbsorbedRows))]
    public async Task A_retriable_coordinator_error_is_retried_and_the_transaction_commits(KafkaApi api, ErrorCode injected)
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("absorbed"), o => o.Retry.MaxAttempts = 1);
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = "absorbed-group" }).Build();
        _cluster.CreateTopic("absorbed-input");
        if (api == KafkaApi.InitProducerId)
        {
            _cluster.PushRequestErrors(api, injected);
        }

        await host.Unit.InitializeAsync();
        var runs = 0;

        await host.Unit.ExecuteAsync(async (scope, ct) =>
        {
            runs++;
            if (api != KafkaApi.InitProducerId)
            {
                _cluster.PushRequestErrors(api, injected);
            }

            scope.Produce(new TopicPartition("absorbed-topic", 0), new Message<string, string> { Key = "k", Value = "v" });
            await scope.SendOffsetsAsync([new TopicPartitionOffset("absorbed-input", 0, 7)], consumer.ConsumerGroupMetadata, ct);
        });

        runs.Should().Be(1);
        host.Unit.State.Should().Be(TransactionState.Ready);
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, TimeSpan.FromSeconds(30), "absorbed-topic").Should().ContainSingle();
    }

    [Fact]
    public async Task An_abortable_commit_error_is_retried_by_running_the_work_again()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("abortable-retry"), o => o.Retry.MaxAttempts = 3);
        var runs = 0;

        await host.Unit.ExecuteAsync((scope, _) =>
        {
            if (++runs == 1)
            {
                _cluster.PushRequestErrors(KafkaApi.EndTxn, ErrorCode.TransactionCoordinatorFenced);
            }

            scope.Produce(new TopicPartition("retried", 0), new Message<string, string> { Key = "run", Value = runs.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            return ValueTask.CompletedTask;
        });

        runs.Should().Be(2);
        var visible = TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(30), "retried");
        visible.Select(r => r.Value).Should().Equal("1", "2"); // the mock shows the aborted run too; a real broker's read_committed shows only "2"
        TopicReader.EndOffset(_cluster.BootstrapServers, new TopicPartition("retried", 0)).Should().Be(4, "record, abort marker, record, commit marker");
    }

    [Fact]
    public async Task A_topic_the_cluster_does_not_know_is_rejected_naming_the_topic()
    {
        _cluster.SetTopicError("no-such-topic", ErrorCode.UnknownTopicOrPart);
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("unknown-topic"), o =>
        {
            o.Retry.MaxAttempts = 3;
            o.ClientSettings["topic.metadata.propagation.max.ms"] = "1000";
        });

        var failure = await host.Unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            scope.Produce("no-such-topic", new Message<string, string> { Key = "k", Value = "v" });
            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        failure.Which.Attempts.Should().Be(1, "a rejection is not retried");
        failure.Which.FailedDeliveries.Should().ContainSingle().Which.Error.Code.Should().Be(ErrorCode.UnknownTopicOrPart);
        failure.Which.Message.Should().Contain("no-such-topic");
        host.Unit.State.Should().Be(TransactionState.Ready);
    }

    [Fact]
    public async Task A_record_larger_than_message_max_bytes_is_refused_before_it_is_sent()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("too-large"), o => o.ClientSettings["message.max.bytes"] = "1000");
        await host.Unit.InitializeAsync();
        host.Unit.BeginTransaction();

        var act = () => host.Unit.Produce("big", new Message<Null, byte[]> { Value = new byte[5000] });

        var failure = act.Should().Throw<KafkaTransactionException>().Which;
        failure.Kind.Should().Be(TransactionErrorKind.Rejected);
        failure.Error.Code.Should().Be(ErrorCode.MsgSizeTooLarge);
        failure.Message.Should().Contain("'big'");
        host.Unit.State.Should().Be(TransactionState.InTransaction);
        await host.Unit.AbortAsync();
    }

    [Theory]
    [InlineData(ErrorCode.UnknownMemberId, TransactionErrorKind.Abortable)]
    [InlineData(ErrorCode.GroupAuthorizationFailed, TransactionErrorKind.Rejected)]
    [InlineData(ErrorCode.ProducerFenced, TransactionErrorKind.Fenced)]
    [InlineData(ErrorCode.InvalidProducerEpoch, TransactionErrorKind.Fenced)]
    public async Task Errors_committing_offsets_to_the_transaction_are_classified(ErrorCode injected, TransactionErrorKind expected)
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("offsets-error"), o => o.Retry.MaxAttempts = 1);
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = "offsets-error-group" }).Build();
        _cluster.CreateTopic("in");

        var failure = await host.Unit.Awaiting(u => u.ExecuteAsync(async (scope, ct) =>
        {
            scope.Produce("out", new Message<string, string> { Key = "k", Value = "v" });
            _cluster.PushRequestErrors(KafkaApi.TxnOffsetCommit, injected);
            await scope.SendOffsetsAsync([new TopicPartitionOffset("in", 0, 3)], consumer.ConsumerGroupMetadata, ct);
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(expected);
        failure.Which.Message.Should().Contain("SendOffsetsToTransaction");
    }

    [Fact]
    public async Task Initialization_denied_for_the_transactional_id_is_fatal()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("denied"));
        _cluster.PushRequestErrors(KafkaApi.InitProducerId, ErrorCode.TransactionalIdAuthorizationFailed);

        var failure = await host.Unit.Awaiting(u => u.InitializeAsync()).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Kind.Should().Be(TransactionErrorKind.Fatal);
        failure.Which.Error.Code.Should().Be(ErrorCode.TransactionalIdAuthorizationFailed);
        failure.Which.Message.Should().Contain("ACLs");
        host.Unit.State.Should().Be(TransactionState.Faulted);
    }

    [Fact]
    public async Task With_self_healing_off_a_faulted_unit_recovers_with_a_new_producer_after_reset()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("recover"), o =>
        {
            o.Retry.MaxAttempts = 1;
            o.MaxProducerReplacements = 0;
        });
        await host.Unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            _cluster.PushRequestErrors(KafkaApi.EndTxn, ErrorCode.InvalidTxnState);
            scope.Produce(new TopicPartition("recovered", 0), new Message<string, string> { Key = "k", Value = "lost" });
            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();
        host.Unit.State.Should().Be(TransactionState.Faulted);

        await host.Unit.ResetAsync();
        await host.Unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce(new TopicPartition("recovered", 0), new Message<string, string> { Key = "k", Value = "kept" });
            return ValueTask.CompletedTask;
        });

        host.Unit.State.Should().Be(TransactionState.Ready);
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(30), "recovered").Select(r => r.Value).Should().Contain("kept");
    }

    [Fact]
    public async Task A_full_local_queue_makes_produce_wait_for_room_instead_of_failing()
    {
        // queue.buffering.max.messages=5 makes librdkafka raise Local_QueueFull after five records in flight.
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("queue-full"), o => o.ClientSettings["queue.buffering.max.messages"] = "5");

        await host.Unit.ExecuteAsync((scope, _) =>
        {
            for (var i = 0; i < 200; i++)
            {
                scope.Produce(new TopicPartition("backpressure", 0), new Message<Null, string> { Value = i.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            }

            return ValueTask.CompletedTask;
        });

        host.Logs.Entries.Should().Contain(e => e.Message.Contains("local queue", StringComparison.Ordinal), "the queue did fill up");
        TopicReader.ReadAll(_cluster.BootstrapServers, IsolationLevel.ReadCommitted, TimeSpan.FromSeconds(30), "backpressure").Should().HaveCount(200);
    }

    [Fact]
    public async Task A_fatal_error_reaches_the_application_as_its_own_code_flagged_fatal_never_as_Local_Fatal()
    {
        await using var host = new KafkaTxHost(_cluster.BootstrapServers, KafkaTxHost.UniqueName("fatal-shape"), o =>
        {
            o.Retry.MaxAttempts = 1;
            o.MaxProducerReplacements = 0; // the exception then carries the fatal error itself
        });
        await host.Unit.InitializeAsync();

        var failure = await host.Unit.Awaiting(u => u.ExecuteAsync((scope, _) =>
        {
            _cluster.PushRequestErrors(KafkaApi.Produce, ErrorCode.OutOfOrderSequenceNumber);
            scope.Produce("fatal-topic", new Message<string, string> { Key = "k", Value = "v" });
            return ValueTask.CompletedTask;
        })).Should().ThrowAsync<KafkaTransactionException>();

        failure.Which.Error.Code.Should().Be(ErrorCode.OutOfOrderSequenceNumber);
        failure.Which.Error.IsFatal.Should().BeTrue();
        await host.Logs.WaitFor(m => m.Contains("reported a fatal error", StringComparison.Ordinal)).WaitAsync(TimeSpan.FromSeconds(10));
        host.Logs.Entries.Where(e => e.Message.Contains("reported a fatal error", StringComparison.Ordinal))
            .Should().OnlyContain(e => e.Message.Contains("OutOfOrderSequenceNumber", StringComparison.Ordinal) && !e.Message.Contains("Local_Fatal", StringComparison.Ordinal));
    }
}
