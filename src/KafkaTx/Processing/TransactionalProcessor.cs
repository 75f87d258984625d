using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaTx.Processing;

/// <summary>The hosted service that runs a <see cref="ProcessorEngine{TKey, TValue}"/> while the host runs.</summary>
internal sealed class TransactionalProcessor<TKey, TValue> : BackgroundService, ITransactionalProcessor, IProcessorProgress
{
    private readonly ProcessorEngine<TKey, TValue> _engine;
    private readonly ILogger _logger;
    private readonly bool _stopApplicationOnFailure;
    private readonly ApplicationStopper _stopper;

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
        var settings = options.Get(name);
        _logger = logger;
        _stopApplicationOnFailure = settings.StopApplicationOnFailure;
        _stopper = services.GetService<ApplicationStopper>() ?? new ApplicationStopper(services.GetService<IHostApplicationLifetime>());
        _engine = new ProcessorEngine<TKey, TValue>(
            name,
            settings,
            producerOptions.Get(name),
            services.GetRequiredKeyedService<ITransactionalUnitOfWork>(name),
            clientFactory,
            services.GetRequiredService<IServiceScopeFactory>(),
            handlerType,
            logger,
            time,
            services.GetRequiredService<KafkaTx.Telemetry.KafkaTxInstrumentation>());
    }

    public string Name => _engine.Name;

    public ProcessorState State => _engine.State;

    public Exception? Failure => _engine.Failure;

    public long CommittedTransactions => _engine.CommittedTransactions;

    public long CommittedRecords => _engine.CommittedRecords;

    /// <inheritdoc cref="ProcessorEngine{TKey, TValue}.UncommittedFor"/>
    public TimeSpan UncommittedFor => _engine.UncommittedFor;

    /// <inheritdoc cref="ProcessorEngine{TKey, TValue}.StalledFor"/>
    public TimeSpan StalledFor => _engine.StalledFor;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The loop runs on a thread of its own (Consume blocks), so the host's start is not held up.
        await _engine.RunAsync(stoppingToken).ConfigureAwait(false);
        if (_stopApplicationOnFailure && _engine.State is ProcessorState.Fenced or ProcessorState.Faulted)
        {
            _stopper.Stop(_logger, _engine.Name, _engine.TransactionalId, _engine.State, _engine.Failure);
        }
    }
}
