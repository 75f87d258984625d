using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Reliability.Copying;

/// <summary>What one copier instance is: every incarnation of an instance has the same transactional.id.</summary>
internal sealed record CopierSettings(string BootstrapServers, string Input, string Output, string Group, string TransactionalId, int MaxBatchSize = 100)
{
    /// <summary>What the handler does with each record. Default <see cref="HandlerShape.Copy"/>.</summary>
    public HandlerShape Handler { get; init; } = HandlerShape.Copy;

    /// <summary>How long the handler's call takes, awaited with its cancellation token (Await and Split).</summary>
    public TimeSpan HandlerDelay { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>How long the armed call goes on after a graceful stop began (see <see cref="CopyTarget.ArmStop"/>).</summary>
    public TimeSpan StopCall { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Whether each call awaits a uniform random time from 0 to <see cref="HandlerDelay"/> instead of exactly it.</summary>
    public bool RandomDelay { get; init; }

    /// <summary>The processor's MaxConcurrency: handler calls at once. Default 1, the processor's own default.</summary>
    public int MaxConcurrency { get; init; } = 1;

    /// <summary>The processor's Order when <see cref="MaxConcurrency"/> is above 1. Default Key, the processor's own default.</summary>
    public ProcessingOrder Order { get; init; } = ProcessingOrder.Key;

    /// <summary>Whether the copier's handler is a batch handler (<see cref="BatchCopyHandler"/>: a transaction's records in one call). MaxConcurrency is then 1.</summary>
    public bool BatchHandler { get; init; }

    /// <summary>
    /// One handler call in this many (at random) ignores its cancellation token for <see cref="IgnoreCancellationFor"/>,
    /// and the processor's ShutdownTimeout is <see cref="ShortShutdownTimeout"/>, so that such calls are abandoned.
    /// 0 (default): every call honours its token, and ShutdownTimeout is the processor's default.
    /// </summary>
    public int IgnoreCancellationEvery { get; init; }

    /// <summary>How long a call that ignores its token goes on, cancelled or not.</summary>
    public static TimeSpan IgnoreCancellationFor { get; } = TimeSpan.FromSeconds(1);

    /// <summary>The processor's ShutdownTimeout when calls ignore their token: well below <see cref="IgnoreCancellationFor"/>.</summary>
    public static TimeSpan ShortShutdownTimeout { get; } = TimeSpan.FromMilliseconds(200);
}

/// <summary>Names of the processing orders on the command line.</summary>
internal static class ProcessingOrders
{
    /// <summary>The order a command-line name stands for: key, partition or unordered.</summary>
    public static ProcessingOrder Parse(string name) => name switch
    {
        "key" => ProcessingOrder.Key,
        "partition" => ProcessingOrder.Partition,
        "unordered" => ProcessingOrder.Unordered,
        _ => throw new ArgumentException($"--order {name}: expected key, partition or unordered."),
    };

    /// <summary>The command-line name of an order.</summary>
    public static string Name(this ProcessingOrder order) => order switch
    {
        ProcessingOrder.Partition => "partition",
        ProcessingOrder.Unordered => "unordered",
        _ => "key",
    };
}

/// <summary>The copier application: KafkaTx's processor copying the input topic to the output topic.</summary>
internal static class CopierApp
{
    public static IHost Build(CopierSettings settings, CopyTarget target, InMemoryKafkaCluster? cluster = null, LogLevel minimumLevel = LogLevel.Warning)
    {
        var builder = Host.CreateApplicationBuilder([]);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(minimumLevel);
        builder.Services.AddSingleton(target);
        var kafka = builder.Services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = settings.BootstrapServers;
            o.TransactionalId = settings.TransactionalId;
        });
        if (cluster is not null)
        {
            kafka.UseInMemoryKafka(cluster);
        }

        void Configure(TransactionalProcessorOptions p)
        {
            p.Topics.Add(settings.Input);
            p.GroupId = settings.Group;
            p.MaxBatchSize = settings.MaxBatchSize;
            p.MaxConcurrency = settings.MaxConcurrency;
            p.Order = settings.Order;
            p.MaxBufferedRecords = Math.Max(p.MaxBufferedRecords, settings.MaxConcurrency);
            if (settings.IgnoreCancellationEvery > 0)
            {
                p.ShutdownTimeout = CopierSettings.ShortShutdownTimeout;
            }
        }

        if (settings.BatchHandler)
        {
            kafka.AddTransactionalProcessor<BatchCopyHandler>(Configure);
        }
        else
        {
            kafka.AddTransactionalProcessor<CopyHandler>(Configure);
        }

        var host = builder.Build();
        host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.Register(target.StopBegan);
        return host;
    }

    public static ITransactionalProcessor Processor(IHost host) => host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
}
