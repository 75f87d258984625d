using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.InMemory;

/// <summary>
/// A processor of byte[] keys and values gets the consumed record itself (no copy), unless the application
/// registered a byte[] deserializer of its own, which then runs.
/// </summary>
public class ByteArrayProcessorTests
{
    [Theory]
    [InlineData(false, "abc")]
    [InlineData(true, "cba")]
    public async Task A_byte_array_processor_copies_the_bytes_as_consumed_or_through_the_registered_deserializer(bool reversing, string expected)
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("raw-in", 1);
        var producer = kafka.CreateProducer(new ProducerConfig());
        producer.Produce("raw-in", new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = "abc"u8.ToArray() });
        var builder = Host.CreateApplicationBuilder();
        var transactions = builder.Services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "in-memory";
            o.TransactionalId = "raw-copier";
        }).UseInMemoryKafka(kafka);
        if (reversing)
        {
            transactions.AddDeserializer<byte[]>(new Reversing());
        }

        transactions.AddTransactionalProcessor<RawCopy>(o =>
        {
            o.Topics.Add("raw-in");
            o.GroupId = "raw-copiers";
            o.MaxBatchDuration = TimeSpan.FromMilliseconds(50);
        });
        using var host = builder.Build();

        await host.StartAsync();
        await ProcessorHarness.Until(() => kafka.ReadTopic("raw-out").Count == 1, "the record is copied");
        await host.StopAsync();

        kafka.ReadTopic("raw-out").Single().ValueText.Should().Be(expected);
    }

    private sealed class RawCopy : ITransactionalHandler<byte[], byte[]>
    {
        public ValueTask HandleAsync(ConsumeResult<byte[], byte[]> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            transaction.Produce("raw-out", new Message<byte[], byte[]> { Key = record.Message.Key, Value = record.Message.Value });
            return ValueTask.CompletedTask;
        }
    }

    private sealed class Reversing : IDeserializer<byte[]>
    {
        public byte[] Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context)
        {
            var bytes = data.ToArray();
            Array.Reverse(bytes);
            return bytes;
        }
    }
}
