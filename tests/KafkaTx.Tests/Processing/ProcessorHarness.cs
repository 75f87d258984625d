using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Processing;
using KafkaTx.Telemetry;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.Processing;

/// <summary>What the test handler does with each record, and what it saw.</summary>
internal sealed class HandlerScript
{
    public ConcurrentQueue<string> Seen { get; } = new();

    /// <summary>Each record handled, with the handler instance that handled it.</summary>
    public ConcurrentQueue<(string Value, object Handler)> HandledBy { get; } = new();

    /// <summary>Decides whether handling a record (by value) throws; called with how often that value was seen.</summary>
    public Func<string, int, bool> Fail { get; set; } = (_, _) => false;

    public Action<string>? OnHandle { get; set; }

    /// <summary>
    /// Awaited with the handler's token before the record is copied, as a handler calling a database or a service
    /// does (null: the handler completes synchronously). With <see cref="WriteBeforeAwait"/>, a first record
    /// (value + "-first") is written before it, so that half of a handler's work would show.
    /// </summary>
    public Func<string, CancellationToken, Task>? Await { get; set; }

    public bool WriteBeforeAwait { get; set; }

    /// <summary>Handlers that ended with their token cancelled.</summary>
    public ConcurrentQueue<string> Cancelled { get; } = new();

    /// <summary>Whether any handler ran with a synchronization context (the processor's thread must not leak into it).</summary>
    public bool SawSynchronizationContext { get; set; }

    public int TimesSeen(string value) => Seen.Count(v => v == value);
}

/// <summary>Copies each input record to "out", or fails as scripted.</summary>
internal sealed class CopyHandler(HandlerScript script) : ITransactionalHandler<string, string>
{
    public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        var value = record.Message.Value;
        script.Seen.Enqueue(value);
        script.HandledBy.Enqueue((value, this));
        script.OnHandle?.Invoke(value);
        script.SawSynchronizationContext |= SynchronizationContext.Current is not null;
        if (script.Fail(value, script.TimesSeen(value)))
        {
            throw new InvalidDataException($"cannot handle {value}");
        }

        if (script.Await is { } wait)
        {
            return AwaitThenCopyAsync(record, transaction, wait, cancellationToken);
        }

        transaction.Produce("out", new Message<string, string> { Key = record.Message.Key, Value = value });
        return ValueTask.CompletedTask;
    }

    private async ValueTask AwaitThenCopyAsync(ConsumeResult<string, string> record, ITransactionScope transaction, Func<string, CancellationToken, Task> wait, CancellationToken cancellationToken)
    {
        var value = record.Message.Value;
        if (script.WriteBeforeAwait)
        {
            transaction.Produce("out", new Message<string, string> { Key = record.Message.Key, Value = value + "-first" });
        }

        try
        {
            await wait(value, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            script.Cancelled.Enqueue(value);
            throw;
        }

        transaction.Produce("out", new Message<string, string> { Key = record.Message.Key, Value = value });
    }
}

/// <summary>A processor loop over fakes: a fake broker feeding a fake consumer, and fake producers.</summary>
internal sealed class ProcessorHarness : IAsyncDisposable
{
    public static readonly TopicPartition P0 = new("in", 0);
    public static readonly TopicPartition P1 = new("in", 1);

    private readonly CancellationTokenSource _stop = new();
    private readonly ServiceProvider _services;

    public ProcessorHarness(Action<TransactionalProcessorOptions>? configure = null, Action<KafkaTransactionsOptions>? producer = null, Action<FakeProducer>? setupProducer = null, TimeProvider? clock = null, FakeBroker? broker = null, Func<IServiceScopeFactory, IServiceScopeFactory>? wrapScopes = null, Action<IServiceCollection>? services = null, Type? handler = null)
    {
        Broker = broker ?? new FakeBroker();
        Factory = new FakeClientFactory { Broker = Broker, Setup = setupProducer };
        var producerOptions = TestUnits.Options(producer);
        Options = new TransactionalProcessorOptions { Topics = ["in"], GroupId = "group" };
        Options.Retry.BaseDelay = TimeSpan.Zero;
        configure?.Invoke(Options);
        var time = clock ?? TimeProvider.System;
        Unit = new TransactionalUnitOfWork(string.Empty, producerOptions, Factory, NullLogger.Instance, Instrumentation, time);
        var collection = new ServiceCollection().AddSingleton(Script).AddScoped<CopyHandler>();
        services?.Invoke(collection);
        _services = collection.BuildServiceProvider();
        Loop = new ProcessorLoop<string, string>("orders", Options, producerOptions, Unit, Factory, (wrapScopes ?? (f => f))(_services.GetRequiredService<IServiceScopeFactory>()), handler ?? typeof(CopyHandler), NullLogger.Instance, time, Instrumentation);
    }

    public FakeBroker Broker { get; }

    /// <summary>The unit's and the loop's metrics and traces.</summary>
    public KafkaTxInstrumentation Instrumentation { get; } = new();

    public FakeClientFactory Factory { get; }

    public HandlerScript Script { get; } = new();

    public TransactionalProcessorOptions Options { get; }

    public TransactionalUnitOfWork Unit { get; }

    public ProcessorLoop<string, string> Loop { get; }

    public Task? Running { get; private set; }

    /// <summary>Whether StopAsync has asked the processor to stop.</summary>
    public bool StopRequested => _stop.IsCancellationRequested;

    public FakeConsumer Consumer => Factory.Consumers.Single();

    /// <summary>All records committed to "out", from every producer the loop used.</summary>
    public List<string?> CommittedOutput => [.. Factory.Producers.SelectMany(p => p.Committed).Where(r => r.Topic == "out").Select(r => r.ValueText)];

    public List<ProducedRecord> CommittedTo(string topic) => [.. Factory.Producers.SelectMany(p => p.Committed).Where(r => r.Topic == topic)];

    /// <summary>Runs the loop, without waiting for it to start or assigning anything.</summary>
    public void Start() => Running = Task.Run(() => Loop.RunAsync(_stop.Token));

    public async Task StartAsync(params TopicPartition[] assign)
    {
        Start();
        await Until(() => Factory.Consumers.Count == 1 && Loop.State == ProcessorState.Running, "the processor starts");
        Consumer.Rebalance("assign", assign.Length == 0 ? [P0] : assign);
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Running!.WaitAsync(TimeSpan.FromSeconds(30));
    }

    public static async Task Until(Func<bool> condition, string what, double seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out waiting until {what}.");
            }

            await Task.Delay(5);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Running is { IsCompleted: false })
        {
            await StopAsync();
        }

        await Unit.DisposeAsync();
        await _services.DisposeAsync();
        _stop.Dispose();
    }

    public static string Text(byte[]? bytes) => bytes is null ? string.Empty : Encoding.UTF8.GetString(bytes);
}
