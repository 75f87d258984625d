using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaTx.Processing;

/// <summary>The hosted service that runs a <see cref="ProcessorEngine{TKey, TValue}"/> while the host runs.</summary>
internal sealed class TransactionalProcessor<TKey, TValue> : BackgroundService, ITransactionalProcessor
{
    private readonly ProcessorEngine<TKey, TValue> _engine;

    public TransactionalProcessor(
        string name,
        Type handlerType,
        IServiceProvider services,
        IOptionsMonitor<TransactionalProcessorOptions> options,
        IOptionsMonitor<KafkaTransactionsOptions> producerOptions,
        IKafkaClientFactory clientFactory,
        TimeProvider time)
    {
        var logger = (services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("KafkaTx.TransactionalProcessor");
        _engine = new ProcessorEngine<TKey, TValue>(
            name,
            options.Get(name),
            producerOptions.Get(name),
            services.GetRequiredKeyedService<ITransactionalUnitOfWork>(name),
            clientFactory,
            services.GetRequiredService<IServiceScopeFactory>(),
            handlerType,
            logger,
            time);
    }

    public string Name => _engine.Name;

    public ProcessorState State => _engine.State;

    public Exception? Failure => _engine.Failure;

    public long CommittedTransactions => _engine.CommittedTransactions;

    public long CommittedRecords => _engine.CommittedRecords;

    // Consume blocks, so the loop gets a thread of its own instead of holding up the host's start.
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => _engine.RunAsync(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
}
