using System.Globalization;
using Confluent.Kafka;

namespace KafkaTx.IntegrationTests.Support;

/// <summary>Writes test input with a plain idempotent producer, outside any transaction.</summary>
internal static class TopicWriter
{
    /// <summary>Writes records valued <paramref name="first"/> to first + count - 1 (as text), keyed "k" + value.</summary>
    public static void Seed(string bootstrapServers, string topic, int first, int count)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrapServers, EnableIdempotence = true }).Build();
        for (var i = first; i < first + count; i++)
        {
            var value = i.ToString(CultureInfo.InvariantCulture);
            producer.Produce(topic, new Message<string, string> { Key = "k" + value, Value = value });
        }

        var left = producer.Flush(TimeSpan.FromSeconds(60));
        if (left > 0)
        {
            throw new TimeoutException($"{left} of {count} seed records to '{topic}' were not delivered within 60 s.");
        }
    }
}
