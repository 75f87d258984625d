using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.Fakes;

internal static class TestUnits
{
    public static KafkaTransactionsOptions Options(Action<KafkaTransactionsOptions>? configure = null)
    {
        var options = new KafkaTransactionsOptions
        {
            BootstrapServers = "fake:9092",
            TransactionalIdPrefix = "unit-test",
            InstanceId = "0",
        };
        options.Retry.BaseDelay = TimeSpan.Zero;
        configure?.Invoke(options);
        return options;
    }

    public static (TransactionalUnitOfWork Unit, FakeClientFactory Factory) Create(
        Action<KafkaTransactionsOptions>? configure = null,
        Action<FakeProducer>? setup = null,
        TimeProvider? time = null,
        ILogger? logger = null)
    {
        var factory = new FakeClientFactory { Setup = setup };
        var unit = new TransactionalUnitOfWork(string.Empty, Options(configure), factory, logger ?? NullLogger.Instance, new KafkaTxInstrumentation(), time ?? TimeProvider.System);
        return (unit, factory);
    }

    public static async Task<(TransactionalUnitOfWork Unit, FakeProducer Producer)> CreateReady(Action<KafkaTransactionsOptions>? configure = null, TimeProvider? time = null)
    {
        var (unit, factory) = Create(configure, time: time);
        await unit.InitializeAsync();
        return (unit, factory.Current);
    }
}
