using Confluent.Kafka;

namespace KafkaTx.Tests.Fakes;

internal sealed class FakeClientFactory : IKafkaClientFactory
{
    public List<FakeProducer> Producers { get; } = [];

    public List<ProducerConfig> Configs { get; } = [];

    /// <summary>The error callback of each producer, in creation order: a test reports client errors through it, as librdkafka does.</summary>
    public List<Action<Error>> ErrorHandlers { get; } = [];

    /// <summary>The log callback of each producer, in creation order.</summary>
    public List<Action<LogMessage>> LogHandlers { get; } = [];

    /// <summary>Applied to each new producer, so that tests can script it before the unit of work uses it.</summary>
    public Action<FakeProducer>? Setup { get; set; }

    public FakeProducer Current => Producers[^1];

    /// <summary>When set, producers commit sent offsets to it and consumers read from it.</summary>
    public FakeBroker? Broker { get; set; }

    public List<FakeConsumer> Consumers { get; } = [];

    public List<ConsumerConfig> ConsumerConfigs { get; } = [];

    /// <summary>Runs on each consumer as it is created (the first is Consumers[0]).</summary>
    public Action<FakeConsumer>? SetupConsumer { get; set; }

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers)
    {
        var consumer = new FakeConsumer(Broker ?? throw new InvalidOperationException("Set Broker to create consumers."), handlers);
        Consumers.Add(consumer);
        SetupConsumer?.Invoke(consumer);
        ConsumerConfigs.Add(config);
        return consumer;
    }

    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler)
    {
        var producer = new FakeProducer { Broker = Broker };
        Setup?.Invoke(producer);
        Producers.Add(producer);
        Configs.Add(config);
        ErrorHandlers.Add(errorHandler);
        LogHandlers.Add(logHandler);
        return producer;
    }
}
