using System.Text;
using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.Serialization;

/// <summary>
/// A processor whose input type has an asynchronous deserializer, on the in-memory Kafka, in its three ways of
/// handling (record, concurrent, batch): awaited before the handler runs; a registry outage retried without counting
/// toward poison (nothing dead-lettered); a record its schema refuses dead-lettered with why.
/// </summary>
public class AsyncDeserializerProcessorTests
{
    private readonly InMemoryKafkaCluster _kafka = new();
    private readonly ScriptedAsyncSerde _serde = new();

    public enum Mode
    {
        Record,
        Concurrent,
        Batch,
    }

    [Theory]
    [InlineData(Mode.Record)]
    [InlineData(Mode.Concurrent)]
    [InlineData(Mode.Batch)]
    public async Task Records_are_deserialized_by_awaiting_the_async_deserializer_before_the_handler_runs(Mode mode)
    {
        Input("a", "b", "c", "d");
        using var host = Host(mode, maxAttempts: 2);

        await host.StartAsync();
        await ProcessorHarness.Until(() => _kafka.ReadTopic("out").Count == 4, "four records copied");
        await host.StopAsync();

        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().BeEquivalentTo(["copied a", "copied b", "copied c", "copied d"]);
        _kafka.ReadTopic("in.DLT", IsolationLevel.ReadUncommitted).Should().BeEmpty();
    }

    [Theory]
    [InlineData(Mode.Record)]
    [InlineData(Mode.Concurrent)]
    [InlineData(Mode.Batch)]
    public async Task A_registry_outage_longer_than_the_retries_is_waited_out_and_nothing_is_dead_lettered(Mode mode)
    {
        Input("a", "b", "c");
        _serde.FailNext(5); // more failures than Retry.MaxAttempts (2) would allow a record of its own
        using var host = Host(mode, maxAttempts: 2);

        await host.StartAsync();
        await ProcessorHarness.Until(() => _kafka.ReadTopic("out").Count >= 3, "the copy resumes once the registry answers");
        await host.StopAsync();

        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().BeEquivalentTo(["copied a", "copied b", "copied c"], "each record exactly once");
        _kafka.ReadTopic("in.DLT", IsolationLevel.ReadUncommitted).Should().BeEmpty("the registry was down, not the records bad");
    }

    [Theory]
    [InlineData(Mode.Record)]
    [InlineData(Mode.Concurrent)]
    [InlineData(Mode.Batch)]
    public async Task A_registry_that_answers_only_after_the_transaction_ran_out_of_time_never_makes_a_record_poison(Mode mode)
    {
        // Each of the first calls hangs for nearly all of TransactionTimeout before it fails as unreachable: a failure
        // that arrives when the transaction has outlived its time is still the registry's, never the record's. One
        // call for each record, with Retry.MaxAttempts 1: one failure charged to a record would make it poison.
        Input("a", "b");
        // TransactionTimeout 10 s leaves the abort 1 s (the commit margin): 0.6 s was once too little under a loaded CI.
        _serde.SlowNext(2, TimeSpan.FromMilliseconds(9800), thenFail: true);
        using var host = Host(mode, maxAttempts: 1, transactionTimeout: TimeSpan.FromSeconds(10));

        await host.StartAsync();
        var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        await ProcessorHarness.Until(() => _kafka.ReadTopic("out").Count >= 2 || _kafka.ReadTopic("in.DLT", IsolationLevel.ReadUncommitted).Count > 0 || processor.State > ProcessorState.Running, "the copy resumes once the registry answers", seconds: 60);
        processor.State.Should().Be(ProcessorState.Running, processor.Failure?.ToString());
        await host.StopAsync();

        CopiedOnceNothingDeadLetteredNoTransactionTimedOut("a", "b");
    }

    [Theory]
    [InlineData(Mode.Record)]
    [InlineData(Mode.Concurrent)]
    [InlineData(Mode.Batch)]
    public async Task A_deserializer_slower_than_the_transaction_timeout_is_not_awaited_past_it_so_the_producer_is_not_fenced(Mode mode)
    {
        // Calls that would answer (successfully) only after the broker aborted the transaction and fenced the producer:
        // the processor stops waiting before that, aborts, and reads the records again once the registry is quick.
        Input("a", "b", "c");
        // TransactionTimeout 10 s leaves the abort 1 s (the commit margin), as above.
        _serde.SlowNext(2, TimeSpan.FromMilliseconds(10200), thenFail: false);
        using var host = Host(mode, maxAttempts: 2, transactionTimeout: TimeSpan.FromSeconds(10));
        await host.StartAsync();
        var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);

        await ProcessorHarness.Until(() => _kafka.ReadTopic("out").Count >= 3 || processor.State is ProcessorState.Fenced or ProcessorState.Faulted or ProcessorState.Stopped, "the copy done, or the processor stopped", seconds: 60);
        processor.State.Should().Be(ProcessorState.Running, processor.Failure?.Message);
        await host.StopAsync();

        CopiedOnceNothingDeadLetteredNoTransactionTimedOut("a", "b", "c");
    }

    [Theory]
    [InlineData(Mode.Record)]
    [InlineData(Mode.Concurrent)]
    [InlineData(Mode.Batch)]
    public async Task A_stop_while_the_registry_never_answers_ends_at_ShutdownTimeout_and_a_restart_copies_every_record_once(Mode mode)
    {
        // The registry hangs: the stop waits for the deserializer as for a handler, then gives up at ShutdownTimeout;
        // nothing is committed or charged, and the next run reads the records again from the committed offsets.
        Input("a", "b");
        _serde.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (var host = Host(mode, maxAttempts: 1, shutdownTimeout: TimeSpan.FromMilliseconds(300)))
        {
            await host.StartAsync();
            await ProcessorHarness.Until(() => _serde.Calls > 0, "a deserializer call waits for the registry");
            await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(20)); // never ends, if the wait ignores the stop
            host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty).State.Should().Be(ProcessorState.Stopped);
        }

        _kafka.ReadTopic("out", IsolationLevel.ReadUncommitted).Should().BeEmpty();
        _serde.Gate.SetResult();
        using (var restarted = Host(mode, maxAttempts: 1))
        {
            await restarted.StartAsync();
            await ProcessorHarness.Until(() => _kafka.ReadTopic("out").Count >= 2, "the restarted processor copies both");
            await restarted.StopAsync();
        }

        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().BeEquivalentTo(["copied a", "copied b"], "each record exactly once");
        _kafka.ReadTopic("in.DLT", IsolationLevel.ReadUncommitted).Should().BeEmpty("a stop is nobody's fault");
    }

    [Theory]
    [InlineData(Mode.Record)]
    [InlineData(Mode.Concurrent)]
    [InlineData(Mode.Batch)]
    public async Task A_record_its_schema_refuses_is_dead_lettered_with_the_reason(Mode mode)
    {
        Input("a", "bad", "c");
        _serde.Refuses = "bad";
        using var host = Host(mode, maxAttempts: 2);

        await host.StartAsync();
        await ProcessorHarness.Until(() => _kafka.ReadTopic("out").Count == 2 && _kafka.ReadTopic("in.DLT").Count == 1, "two copies and one dead letter");
        await host.StopAsync();

        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().BeEquivalentTo(["copied a", "copied c"]);
        var deadLetter = _kafka.ReadTopic("in.DLT").Single();
        deadLetter.ValueText.Should().Be("bad");
        Header(deadLetter, DeadLetterHeaders.ErrorType).Should().Be(typeof(ConsumeException).FullName);
        Header(deadLetter, DeadLetterHeaders.ErrorMessage).Should().Contain("InvalidDataException: 'bad' does not match the schema");
    }

    private void CopiedOnceNothingDeadLetteredNoTransactionTimedOut(params string[] values)
    {
        _kafka.ReadTopic("out").Select(r => r.ValueText).Should().BeEquivalentTo(values.Select(v => $"copied {v}"), "each record exactly once");
        _kafka.ReadTopic("in.DLT", IsolationLevel.ReadUncommitted).Should().BeEmpty("the registry was slow, not the records bad");
        _kafka.TransactionSpans().TimedOut.Should().Be(0, "every transaction ended before the broker would abort it (and fenced the producer)");
    }

    private void Input(params string[] values)
    {
        _kafka.CreateTopic("in", 2);
        using var producer = _kafka.CreateProducer(new ProducerConfig());
        foreach (var value in values)
        {
            producer.Produce("in", new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes(value), Value = Encoding.UTF8.GetBytes(value) });
        }
    }

    private IHost Host(Mode mode, int maxAttempts, TimeSpan? transactionTimeout = null, TimeSpan? shutdownTimeout = null)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        var kafka = builder.Services.AddKafkaTransactions(o =>
            {
                o.TransactionalId = "copier-0";
                o.TransactionTimeout = transactionTimeout ?? o.TransactionTimeout;
            })
            .UseInMemoryKafka(_kafka)
            .AddDeserializer<Text>(_serde);
        void Configure(TransactionalProcessorOptions p)
        {
            p.Topics.Add("in");
            p.GroupId = "copiers";
            p.MaxBatchDuration = TimeSpan.FromMilliseconds(20);
            p.MaxConcurrency = mode == Mode.Concurrent ? 4 : 1;
            p.Retry.MaxAttempts = maxAttempts;
            p.Retry.BaseDelay = TimeSpan.FromMilliseconds(1);
            p.ShutdownTimeout = shutdownTimeout ?? p.ShutdownTimeout;
        }

        if (mode == Mode.Batch)
        {
            kafka.AddTransactionalProcessor<BatchCopier>(Configure);
        }
        else
        {
            kafka.AddTransactionalProcessor<Copier>(Configure);
        }

        return builder.Build();
    }

    private static string? Header(InMemoryRecord record, string name) =>
        record.Headers?.TryGetLastBytes(name, out var bytes) == true ? Encoding.UTF8.GetString(bytes) : null;

    private sealed class Copier : ITransactionalHandler<string, Text>
    {
        public ValueTask HandleAsync(ConsumeResult<string, Text> record, ITransactionScope transaction, CancellationToken cancellationToken) =>
            transaction.ProduceAsync("out", new Message<string, string> { Key = record.Message.Key, Value = $"copied {record.Message.Value.Value}" }, cancellationToken);
    }

    private sealed class BatchCopier : ITransactionalBatchHandler<string, Text>
    {
        public async ValueTask HandleAsync(IReadOnlyList<ConsumeResult<string, Text>> records, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            foreach (var record in records)
            {
                await transaction.ProduceAsync("out", new Message<string, string> { Key = record.Message.Key, Value = $"copied {record.Message.Value.Value}" }, cancellationToken);
            }
        }
    }
}
