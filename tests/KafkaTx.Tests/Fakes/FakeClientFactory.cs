using Confluent.Kafka;

namespace KafkaTx.Tests.Fakes;

internal sealed class FakeClientFactory : IKafkaClientFactory
{
    public List<FakeProducer> Producers { get; } = [];

    public List<ProducerConfig> Configs { get; } = [];

    /// <summary>Applied to each new producer, so that tests can script it before the unit of work uses it.</summary>
    public Action<FakeProducer>? Setup { get; set; }

    public FakeProducer Current => Producers[^1];

    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler)
    {
        var producer = new FakeProducer();
        Setup?.Invoke(producer);
        Producers.Add(producer);
        Configs.Add(config);
        return producer;
    }
}
