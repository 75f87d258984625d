using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaTx.Processing;

/// <summary>The hosted service that runs a <see cref="ProcessorLoop{TKey, TValue}"/> while the host runs.</summary>
internal sealed class TransactionalProcessor<TKey, TValue> : BackgroundService, ITransactionalProcessor, IProcessorProgress
{
    private readonly ProcessorLoop<TKey, TValue> _loop;
    private readonly ILogger _logger;
    private readonly bool _stopApplicationOnFailure;
    private readonly ApplicationStopper _stopper;

    public TransactionalProcessor(
        string name,
        Type handlerType,
        IServiceProvider services,
        IOptionsMonitor<TransactionalProcessorOptions> options,
        IOptionsMonitor<KafkaTransactionsOptions> producerOptions,
        KafkaTx.Clients.ClientFactories clientFactories,
        TimeProvider time)
    {
        var logger = (services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("KafkaTx.TransactionalProcessor");
        var settings = options.Get(name);
        _logger = logger;
        _stopApplicationOnFailure = settings.StopApplicationOnFailure;
        _stopper = services.GetService<ApplicationStopper>() ?? new ApplicationStopper(services.GetService<IHostApplicationLifetime>());
        _loop = new ProcessorLoop<TKey, TValue>(
            name,
            settings,
            producerOptions.Get(name),
            services.GetRequiredKeyedService<ITransactionalUnitOfWork>(name),
            clientFactories.For(name), // the builder's own (UseInMemoryKafka is per builder), else the application's
            services.GetRequiredService<IServiceScopeFactory>(),
            handlerType,
            logger,
            time,
            services.GetRequiredService<KafkaTx.Telemetry.KafkaTxInstrumentation>());
    }

    public string Name => _loop.Name;

    public ProcessorState State => _loop.State;

    public Exception? Failure => _loop.Failure;

    public long CommittedTransactions => _loop.CommittedTransactions;

    public long CommittedRecords => _loop.CommittedRecords;

    /// <inheritdoc cref="ProcessorLoop{TKey, TValue}.UncommittedFor"/>
    public TimeSpan UncommittedFor => _loop.UncommittedFor;

    /// <inheritdoc cref="ProcessorLoop{TKey, TValue}.StalledFor"/>
    public TimeSpan StalledFor => _loop.StalledFor;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The loop runs on a thread of its own (Consume blocks), so the host's start is not held up.
        await _loop.RunAsync(stoppingToken).ConfigureAwait(false);
        if (_stopApplicationOnFailure && _loop.State is ProcessorState.Fenced or ProcessorState.Faulted)
        {
            _stopper.Stop(_logger, _loop.Name, _loop.TransactionalId, _loop.State, _loop.Failure);
        }
    }
}
