using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaTx.Processing;

/// <summary>The hosted service that runs a <see cref="ProcessorLoop{TKey, TValue}"/> while the host runs.</summary>
/// <remarks>
/// Nothing is resolved or validated when the host builds its hosted services: the options, the producer and the loop
/// come at <see cref="StartAsync"/>, after the host's start-up validation, so that every producer's and processor's
/// problems are reported together by that validation instead of one of them by this constructor.
/// </remarks>
internal sealed class TransactionalProcessor<TKey, TValue> : BackgroundService, ITransactionalProcessor, IProcessorProgress
{
    private readonly string _name;
    private readonly Type _handlerType;
    private readonly IServiceProvider _services;
    private readonly IOptionsMonitor<TransactionalProcessorOptions> _options;
    private readonly IOptionsMonitor<KafkaTransactionsOptions> _producerOptions;
    private readonly KafkaTx.Clients.ClientFactories _clientFactories;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ApplicationStopper _stopper;
    private volatile ProcessorLoop<TKey, TValue>? _loop;
    private bool _stopApplicationOnFailure;

    public TransactionalProcessor(
        string name,
        Type handlerType,
        IServiceProvider services,
        IOptionsMonitor<TransactionalProcessorOptions> options,
        IOptionsMonitor<KafkaTransactionsOptions> producerOptions,
        KafkaTx.Clients.ClientFactories clientFactories,
        TimeProvider time)
    {
        _name = name;
        _handlerType = handlerType;
        _services = services;
        _options = options;
        _producerOptions = producerOptions;
        _clientFactories = clientFactories;
        _time = time;
        _logger = (services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("KafkaTx.TransactionalProcessor");
        _stopper = services.GetService<ApplicationStopper>() ?? new ApplicationStopper(services.GetService<IHostApplicationLifetime>());
    }

    public string Name => _loop?.Name ?? _name;

    public string? TransactionalId => _loop?.TransactionalId;

    public ProcessorState State => _loop?.State ?? ProcessorState.Created;

    public Exception? Failure => _loop?.Failure;

    public long CommittedTransactions => _loop?.CommittedTransactions ?? 0;

    public long CommittedRecords => _loop?.CommittedRecords ?? 0;

    /// <inheritdoc cref="ProcessorLoop{TKey, TValue}.UncommittedFor"/>
    public TimeSpan UncommittedFor => _loop?.UncommittedFor ?? TimeSpan.Zero;

    /// <inheritdoc cref="ProcessorLoop{TKey, TValue}.StalledFor"/>
    public TimeSpan StalledFor => _loop?.StalledFor ?? TimeSpan.Zero;

    /// <inheritdoc cref="ProcessorLoop{TKey, TValue}.WaitingForGroupCoordinatorFor"/>
    public TimeSpan WaitingForGroupCoordinatorFor => _loop?.WaitingForGroupCoordinatorFor ?? TimeSpan.Zero;

    /// <summary>Builds the loop (refusing to start on invalid options, or on a producer something else took), then runs it.</summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _loop ??= CreateLoop();
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var loop = _loop ?? throw new InvalidOperationException("The processor runs only after StartAsync.");

        // The loop runs on a thread of its own (Consume blocks), so the host's start is not held up.
        await loop.RunAsync(stoppingToken).ConfigureAwait(false);
        if (_stopApplicationOnFailure && loop.State is ProcessorState.Fenced or ProcessorState.Faulted)
        {
            _stopper.Stop(_logger, loop.Name, loop.TransactionalId, loop.State, loop.Failure);
        }
    }

    private ProcessorLoop<TKey, TValue> CreateLoop()
    {
        var settings = _options.Get(_name); // throws OptionsValidationException naming every problem
        _stopApplicationOnFailure = settings.StopApplicationOnFailure;
        return new ProcessorLoop<TKey, TValue>(
            _name,
            settings,
            _producerOptions.Get(_name),
            _services.GetRequiredKeyedService<KafkaTx.UnitOfWork.TransactionalUnitOfWork>(_name), // the producer it owns
            _clientFactories.For(_name), // the builder's own (UseInMemoryKafka is per builder), else the application's
            _services.GetRequiredService<IServiceScopeFactory>(),
            _handlerType,
            _logger,
            _time,
            _services.GetRequiredService<KafkaTx.Telemetry.KafkaTxInstrumentation>());
    }
}
