using System.Text;
using Confluent.Kafka;
using KafkaTx.Testing;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.Serialization;

/// <summary>The JSON serde in a processor, on the in-memory Kafka: records in, records out, and a record that is not JSON.</summary>
public class JsonProcessorTests
{
    public sealed record Shipment(string OrderId, string Status);

    [Fact]
    public async Task A_processor_reads_and_writes_json_and_dead_letters_a_record_that_is_not_json_naming_where_it_is_and_the_type()
    {
        var kafka = new InMemoryKafkaCluster();
        kafka.CreateTopic("orders", 1);
        using (var producer = kafka.CreateProducer(new ProducerConfig()))
        {
            producer.Produce("orders", new Message<byte[]?, byte[]?> { Key = "o-1"u8.ToArray(), Value = """{"orderId":"o-1","amount":12.5}"""u8.ToArray() });
            producer.Produce("orders", new Message<byte[]?, byte[]?> { Key = "o-2"u8.ToArray(), Value = "not json"u8.ToArray() });
            producer.Produce("orders", new Message<byte[]?, byte[]?> { Key = "o-3"u8.ToArray(), Value = """{"orderId":"o-3","amount":1}"""u8.ToArray() });
        }

        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddKafkaTransactions(o => o.TransactionalId = "shipper-0")
            .UseInMemoryKafka(kafka)
            .AddDeserializer(new KafkaJsonSerde<Order>())
            .AddSerializer(new KafkaJsonSerde<Shipment>())
            .AddTransactionalProcessor<Shipper>(p =>
            {
                p.Topics.Add("orders");
                p.GroupId = "shippers";
                p.MaxBatchDuration = TimeSpan.FromMilliseconds(20);
                p.Retry.MaxAttempts = 2;
                p.Retry.BaseDelay = TimeSpan.Zero;
            });
        using var host = builder.Build();

        await host.StartAsync();
        await ProcessorHarness.Until(() => kafka.ReadTopic("shipments").Count == 2 && kafka.ReadTopic("orders.DLT").Count == 1, "two shipments and one dead letter");
        await host.StopAsync();

        kafka.ReadTopic("shipments").Select(r => r.ValueText).Should().Equal("""{"orderId":"o-1","status":"shipped"}""", """{"orderId":"o-3","status":"shipped"}""");
        var deadLetter = kafka.ReadTopic("orders.DLT").Single();
        deadLetter.ValueText.Should().Be("not json", "the dead letter is the record as consumed");
        Header(deadLetter, DeadLetterHeaders.ErrorType).Should().Be(typeof(ConsumeException).FullName);
        Header(deadLetter, DeadLetterHeaders.ErrorMessage).Should()
            .StartWith($"Could not deserialize the value of the record at topic 'orders', partition 0, offset 1 as {typeof(Order).FullName}: JsonException: ");
    }

    private static string? Header(InMemoryRecord record, string name) =>
        record.Headers?.TryGetLastBytes(name, out var bytes) == true ? Encoding.UTF8.GetString(bytes) : null;

    private sealed class Shipper : ITransactionalHandler<string, Order>
    {
        public ValueTask HandleAsync(ConsumeResult<string, Order> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            var order = record.Message.Value;
            transaction.Produce("shipments", new Message<string, Shipment> { Key = order.OrderId, Value = new Shipment(order.OrderId, "shipped") });
            return ValueTask.CompletedTask;
        }
    }
}
