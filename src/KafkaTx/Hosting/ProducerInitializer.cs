using KafkaTx.Telemetry;
using KafkaTx.UnitOfWork;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaTx.Hosting;

/// <summary>A producer that <c>InitializeOnStart</c> chose.</summary>
/// <param name="Name">The producer's name; empty for the default producer.</param>
internal sealed record InitializeOnStartRegistration(string Name);

/// <summary>
/// Initializes the chosen producers (InitTransactions) while the host starts, all at once, each within its own
/// timeout, so that the first request pays nothing. A producer that could not initialize in time is logged with the
/// reason and left to be initialized by its first call; the start fails instead only when its options ask for it.
/// </summary>
internal sealed class ProducerInitializer(
    IEnumerable<InitializeOnStartRegistration> registrations,
    IServiceProvider services,
    IOptionsMonitor<KafkaTransactionsInitializeOnStartOptions> options,
    TimeProvider time,
    ILoggerFactory? loggerFactory = null) : IHostedService
{
    /// <summary>Between attempts after InitTimeout ran out within the start's timeout (librdkafka resumes the call).</summary>
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(100);

    private readonly ILogger _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("KafkaTx.TransactionalUnitOfWork");

    public Task StartAsync(CancellationToken cancellationToken) =>
        Task.WhenAll(registrations.Select(r => r.Name).Distinct(StringComparer.Ordinal).Select(name => InitializeAsync(name, cancellationToken)));

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task InitializeAsync(string name, CancellationToken cancellationToken)
    {
        var settings = options.Get(name);
        var unit = services.GetRequiredKeyedService<ITransactionalUnitOfWork>(name);
        var ours = unit as TransactionalUnitOfWork; // null when the application registered a decorator of its own
        using var timeout = new CancellationTokenSource(settings.Timeout, time);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        Exception? failure = null;
        try
        {
            while (true)
            {
                try
                {
                    await unit.InitializeAsync(deadline.Token).ConfigureAwait(false);
                    return;
                }
                catch (KafkaTransactionException e) when (e.Kind == TransactionErrorKind.Retriable)
                {
                    failure = e; // InitTimeout ran out before the start's timeout: librdkafka resumes where it stopped
                    await Task.Delay(RetryDelay, time, deadline.Token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The start's timeout ran out: reported below.
        }
        catch (KafkaTransactionException e)
        {
            failure = e; // fatal or fenced: the unit is in a terminal state, and its health check is Unhealthy
        }

        var error = Describe(ours, failure);
        if (failure is not KafkaTransactionException { Kind: not TransactionErrorKind.Retriable })
        {
            // Not initialized in time is a failed attempt as far as health goes: Degraded now, not after the threshold.
            ours?.Initialization.Failed(new TimeoutException($"InitTransactions did not complete within the {settings.Timeout.TotalSeconds:0.###} s InitializeOnStart waited: {error}"));
        }

        var producer = name.Length == 0 ? "(default)" : name;
        if (settings.FailStartIfNotInitialized)
        {
            throw new InvalidOperationException(
                $"Producer '{producer}' ({unit.TransactionalId}) could not initialize within {settings.Timeout.TotalSeconds:0.###} s of the start: {error}. " +
                "InitializeOnStart's FailStartIfNotInitialized is set, so the application does not start: make the brokers in BootstrapServers reachable, or unset it to start anyway and let requests retry the initialization.",
                failure);
        }

        Log.NotInitializedOnStart(_logger, producer, unit.TransactionalId, settings.Timeout.TotalSeconds, error);
    }

    /// <summary>
    /// A fatal failure speaks for itself; otherwise what the client last said about its brokers says more than a
    /// timeout: "Connection refused" to 127.0.0.1:9.
    /// </summary>
    private static string Describe(TransactionalUnitOfWork? unit, Exception? failure) =>
        failure is KafkaTransactionException { Kind: not TransactionErrorKind.Retriable } ? failure.Message
        : unit?.Connection.Status().LastError is { } connection
            ? $"{connection.Code}: {connection.Reason}"
            : failure?.Message ?? "InitTransactions did not complete, and the client reported no connection failure (a transaction coordinator that does not answer?)";
}
