using System.Text;
using Avro;
using Avro.Generic;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaTx.Testing;
using KafkaTx.Testing.SchemaRegistry;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.SchemaRegistry;

/// <summary>
/// Confluent's real Avro and JSON Schema serdes through KafkaTx, on the in-memory Kafka and a fake schema registry:
/// atomic writes, a processor turning orders into shipments exactly once, a registry outage in the middle of a copy,
/// and records the registry refuses.
/// </summary>
public class SchemaRegistrySerdesTests
{
    private static readonly RecordSchema OrderV1 = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"}]}""");

    private static readonly RecordSchema OrderV2 = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"note","type":["null","string"],"default":null}]}""");

    private static readonly RecordSchema ShipmentSchema = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Shipment","namespace":"shop","fields":[{"name":"orderId","type":"string"},{"name":"status","type":"string"}]}""");

    private readonly InMemoryKafkaCluster _kafka = new();
    private readonly FakeSchemaRegistryClient _registry = new();

    public sealed class Invoice
    {
        public string OrderId { get; set; } = "";

        public double Total { get; set; }
    }

    [Fact]
    public async Task Avro_and_Json_Schema_records_are_written_atomically_to_two_topics_and_read_back_read_committed()
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o => o.TransactionalId = "billing-0")
            .UseInMemoryKafka(_kafka)
            .AddSerializer(new AvroSerializer<GenericRecord>(_registry))
            .AddSerializer(new JsonSerializer<Invoice>(_registry));
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        await unit.ExecuteAsync(async (tx, ct) =>
        {
            await tx.ProduceAsync("orders", new Message<string, GenericRecord> { Key = "o-1", Value = Order(OrderV1, "o-1", 12.5) }, ct);
            await tx.ProduceAsync("invoices", new Message<string, Invoice> { Key = "o-1", Value = new Invoice { OrderId = "o-1", Total = 12.5 } }, ct);
        });
        await unit.Awaiting(u => u.ExecuteAsync(async (tx, ct) =>
        {
            await tx.ProduceAsync("orders", new Message<string, GenericRecord> { Key = "o-2", Value = Order(OrderV1, "o-2", 3) }, ct);
            throw new InvalidOperationException("the work fails after writing: nothing of it may be visible");
        })).Should().ThrowAsync<InvalidOperationException>();

        var orders = await ReadAsync(new AvroDeserializer<GenericRecord>(_registry), "orders");
        orders.Select(o => ((string)o["id"], (double)o["amount"])).Should().Equal(("o-1", 12.5));
        var invoices = await ReadAsync(new JsonDeserializer<Invoice>(_registry), "invoices");
        invoices.Select(i => (i.OrderId, i.Total)).Should().Equal(("o-1", 12.5));
        _registry.Subjects().Should().BeEquivalentTo(["orders-value", "invoices-value"]);
    }

    [Fact]
    public async Task A_processor_turns_Avro_orders_into_Avro_shipments_exactly_once()
    {
        await ProduceOrdersAsync(OrderV1, ["o-1", "o-2", "o-3"]);
        using var host = Shipper();

        await host.StartAsync();
        await ProcessorHarness.Until(() => _kafka.ReadTopic("shipments").Count >= 3, "three shipments");
        await host.StopAsync();

        var shipments = await ReadAsync(new AvroDeserializer<GenericRecord>(_registry), "shipments");
        shipments.Select(s => ((string)s["orderId"], (string)s["status"])).Should().Equal(("o-1", "shipped"), ("o-2", "shipped"), ("o-3", "shipped"));
        _kafka.ReadTopic("orders.DLT", IsolationLevel.ReadUncommitted).Should().BeEmpty();
    }

    [Fact]
    public async Task A_registry_outage_in_the_middle_of_a_copy_loses_nothing_duplicates_nothing_and_dead_letters_nothing()
    {
        // The serdes cache schemas: the outage must hit a lookup they have not cached. The orders written during it
        // carry a schema id the processor has not seen (version 2 of the order schema, registered before the outage
        // by the writer), so its deserializer must ask the registry for it while the registry is down.
        await ProduceOrdersAsync(OrderV1, ["o-1", "o-2", "o-3"]);
        var laterOrders = await SerializeOrdersAsync(OrderV2, ["o-4", "o-5", "o-6"]);
        using var host = Shipper(maxAttempts: 2);

        await host.StartAsync();
        await ProcessorHarness.Until(() => _kafka.ReadTopic("shipments").Count == 3, "the orders before the outage shipped");
        _registry.Down = true;
        ProduceRaw("orders", laterOrders);
        await ProcessorHarness.Until(() => _registry.FailedCalls >= 4, "the processor retried the new schema id against the down registry more often than Retry.MaxAttempts");
        _kafka.ReadTopic("orders.DLT", IsolationLevel.ReadUncommitted).Should().BeEmpty("the registry was down, not the records bad");
        _registry.Down = false;
        await ProcessorHarness.Until(() => _kafka.ReadTopic("shipments").Count >= 6, "the copy resumes when the registry answers");
        await host.StopAsync();

        var shipped = (await ReadAsync(new AvroDeserializer<GenericRecord>(_registry), "shipments")).Select(s => (string)s["orderId"]).ToList();
        shipped.Should().Equal(["o-1", "o-2", "o-3", "o-4", "o-5", "o-6"], "0 duplicates, 0 losses, in order");
        _kafka.ReadTopic("orders.DLT", IsolationLevel.ReadUncommitted).Should().BeEmpty();
    }

    [Fact]
    public async Task A_record_whose_schema_id_the_registry_does_not_know_is_dead_lettered_with_the_reason()
    {
        await ProduceOrdersAsync(OrderV1, ["o-1"]);
        ProduceRaw("orders", [("o-2", [0, 0, 0, 3, 231, 2, 0])]); // magic byte 0, schema id 999: never registered
        await ProduceOrdersAsync(OrderV1, ["o-3"]);
        using var host = Shipper(maxAttempts: 2);

        await host.StartAsync();
        await ProcessorHarness.Until(() => _kafka.ReadTopic("shipments").Count == 2 && _kafka.ReadTopic("orders.DLT").Count == 1, "two shipments and one dead letter");
        await host.StopAsync();

        var deadLetter = _kafka.ReadTopic("orders.DLT").Single();
        deadLetter.KeyText.Should().Be("o-2");
        Header(deadLetter, DeadLetterHeaders.ErrorType).Should().Be(typeof(ConsumeException).FullName);
        Header(deadLetter, DeadLetterHeaders.ErrorMessage).Should().Contain("SchemaRegistryException").And.Contain("Schema 999 not found");
    }

    [Fact]
    public async Task A_schema_the_registry_refuses_as_incompatible_fails_the_work_once_as_Rejected_and_writes_nothing()
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
            {
                o.TransactionalId = "orders-0";
                o.Retry.BaseDelay = TimeSpan.FromMilliseconds(1);
            })
            .UseInMemoryKafka(_kafka)
            .AddSerializer(new AvroSerializer<GenericRecord>(_registry));
        await using var provider = services.BuildServiceProvider();
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.ExecuteAsync((tx, ct) => tx.ProduceAsync("orders", new Message<string, GenericRecord> { Key = "o-1", Value = Order(OrderV1, "o-1", 1) }, ct));
        _registry.RefuseNewVersions("orders-value");
        var runs = 0;

        var refused = await unit.Awaiting(u => u.ExecuteAsync(async (tx, ct) =>
        {
            runs++;
            await tx.ProduceAsync("orders", new Message<string, GenericRecord> { Key = "o-2", Value = Order(OrderV2, "o-2", 2) }, ct);
        })).Should().ThrowAsync<KafkaTransactionException>();

        refused.Which.Kind.Should().Be(TransactionErrorKind.Rejected);
        refused.Which.Error.Code.Should().Be(ErrorCode.Local_ValueSerialization);
        refused.Which.InnerException.Should().BeOfType<SchemaRegistryException>().Which.Status.Should().Be(System.Net.HttpStatusCode.Conflict);
        runs.Should().Be(1, "an incompatible schema is the record's own failure: running the work again cannot help");
        _kafka.ReadTopic("orders").Select(r => r.KeyText).Should().Equal("o-1");
    }

    private IHost Shipper(int maxAttempts = 3)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddKafkaTransactions(o => o.TransactionalId = "shipper-0")
            .UseInMemoryKafka(_kafka)
            .AddDeserializer(new AvroDeserializer<GenericRecord>(_registry))
            .AddSerializer(new AvroSerializer<GenericRecord>(_registry))
            .AddTransactionalProcessor<ShipOrders>(p =>
            {
                p.Topics.Add("orders");
                p.GroupId = "shippers";
                p.MaxBatchDuration = TimeSpan.FromMilliseconds(20);
                p.Retry.MaxAttempts = maxAttempts;
                p.Retry.BaseDelay = TimeSpan.FromMilliseconds(5);
            });
        return builder.Build();
    }

    private static GenericRecord Order(RecordSchema schema, string id, double amount)
    {
        var order = new GenericRecord(schema);
        order.Add("id", id);
        order.Add("amount", amount);
        return order;
    }

    private async Task<List<(string Key, byte[] Value)>> SerializeOrdersAsync(RecordSchema schema, string[] ids)
    {
        var serializer = new AvroSerializer<GenericRecord>(_registry); // the writer's own, as another application's
        var records = new List<(string, byte[])>();
        foreach (var id in ids)
        {
            records.Add((id, await serializer.SerializeAsync(Order(schema, id, 1), new SerializationContext(MessageComponentType.Value, "orders"))));
        }

        return records;
    }

    private async Task ProduceOrdersAsync(RecordSchema schema, string[] ids) => ProduceRaw("orders", await SerializeOrdersAsync(schema, ids));

    private void ProduceRaw(string topic, List<(string Key, byte[] Value)> records)
    {
        using var producer = _kafka.CreateProducer(new ProducerConfig());
        foreach (var (key, value) in records)
        {
            producer.Produce(topic, new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes(key), Value = value });
        }
    }

    private async Task<List<T>> ReadAsync<T>(IAsyncDeserializer<T> deserializer, string topic)
    {
        var values = new List<T>();
        foreach (var record in _kafka.ReadTopic(topic)) // read_committed
        {
            values.Add(await deserializer.DeserializeAsync(record.Value, record.Value is null, new SerializationContext(MessageComponentType.Value, topic)));
        }

        return values;
    }

    private static string? Header(InMemoryRecord record, string name) =>
        record.Headers?.TryGetLastBytes(name, out var bytes) == true ? Encoding.UTF8.GetString(bytes) : null;

    private sealed class ShipOrders : ITransactionalHandler<string, GenericRecord>
    {
        public ValueTask HandleAsync(ConsumeResult<string, GenericRecord> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            var shipment = new GenericRecord(ShipmentSchema);
            shipment.Add("orderId", (string)record.Message.Value["id"]);
            shipment.Add("status", "shipped");
            return transaction.ProduceAsync("shipments", new Message<string, GenericRecord> { Key = record.Message.Key, Value = shipment }, cancellationToken);
        }
    }
}
