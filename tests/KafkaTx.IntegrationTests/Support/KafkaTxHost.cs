using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KafkaTx.IntegrationTests.Support;

/// <summary>A service provider with one KafkaTx producer, built the way an application builds it.</summary>
internal sealed class KafkaTxHost : IAsyncDisposable
{
    private readonly ServiceProvider _provider;

    public KafkaTxHost(string bootstrapServers, string transactionalId, Action<KafkaTransactionsOptions>? configure = null, TimeProvider? clock = null)
    {
        var services = new ServiceCollection();
        if (clock is not null)
        {
            services.AddSingleton(clock);
        }

        services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Debug).AddProvider(Logs));
        services.AddKafkaTransactions(options =>
        {
            options.BootstrapServers = bootstrapServers;
            options.TransactionalId = transactionalId;
            options.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
            configure?.Invoke(options);
        });
        _provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        Unit = _provider.GetRequiredService<ITransactionalUnitOfWork>();
    }

    public CapturingLoggerProvider Logs { get; } = new();

    public ITransactionalUnitOfWork Unit { get; }

    public ValueTask DisposeAsync() => _provider.DisposeAsync();

    public static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, prefix.Length + 33)];
}
