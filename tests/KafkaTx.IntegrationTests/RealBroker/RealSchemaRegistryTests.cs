using Avro;
using Avro.Generic;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaTx.IntegrationTests.Support;
using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaTx.IntegrationTests.RealBroker;

/// <summary>
/// Confluent's Avro and JSON Schema serdes through KafkaTx against a real broker and a real Schema Registry: atomic
/// writes to two topics, a processor turning Avro orders into Avro shipments exactly once, and an incompatible schema
/// change refused per the subject's compatibility. The registry is the one KAFKATX_SCHEMA_REGISTRY_URL names; without
/// it, or without a broker, the tests are skipped with the reason; a URL that is set is trusted, as
/// KAFKATX_BOOTSTRAP_SERVERS is, so an unreachable one fails the tests rather than hiding behind a skip. Topics, hence
/// subjects, are unique per test run, and the subjects a test registered are deleted (soft, then permanently) after it.
/// </summary>
[Collection(RealBrokerGroup.Name)]
public sealed class RealSchemaRegistryTests(KafkaBrokerFixture broker) : IAsyncLifetime
{
    public const string SchemaRegistryUrlVariable = "KAFKATX_SCHEMA_REGISTRY_URL";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private static readonly RecordSchema OrderV1 = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Order","namespace":"kafkatx.it","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"}]}""");

    // Adds a field without a default: a reader of version 2 cannot read version-1 data, so BACKWARD refuses it.
    private static readonly RecordSchema OrderIncompatible = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Order","namespace":"kafkatx.it","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"currency","type":"string"}]}""");

    // Adds an optional field with a default: BACKWARD compatible.
    private static readonly RecordSchema OrderCompatible = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Order","namespace":"kafkatx.it","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"note","type":["null","string"],"default":null}]}""");

    private static readonly RecordSchema ShipmentSchema = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Shipment","namespace":"kafkatx.it","fields":[{"name":"orderId","type":"string"},{"name":"status","type":"string"}]}""");

    private readonly List<string> _topics = [];
    private CachedSchemaRegistryClient? _registry;
    private string? _url;

    public sealed class Invoice
    {
        public string OrderId { get; set; } = "";

        public double Total { get; set; }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>Deletes the subjects of this test's topics from the registry: a shared registry does not fill up with test runs.</summary>
    public async Task DisposeAsync()
    {
        if (_registry is null || _url is null)
        {
            return;
        }

        using (_registry)
        {
            var subjects = (await _registry.GetAllSubjectsAsync()).Where(s => _topics.Exists(t => s == t + "-value" || s == t + "-key")).ToList();
            using var http = new HttpClient { BaseAddress = new Uri(_url.Split(',')[0].TrimEnd('/') + "/") };
            foreach (var subject in subjects)
            {
                // A permanent delete is refused until the subject has been soft-deleted.
                (await http.DeleteAsync($"subjects/{Uri.EscapeDataString(subject)}")).EnsureSuccessStatusCode();
                (await http.DeleteAsync($"subjects/{Uri.EscapeDataString(subject)}?permanent=true")).EnsureSuccessStatusCode();
            }
        }
    }

    [SkippableFact]
    public async Task RealRegistry_Avro_and_Json_Schema_records_are_written_atomically_to_two_topics_and_read_back_read_committed()
    {
        var (servers, registry) = Require();
        var (orders, invoices) = await TwoTopicsAsync("sr-orders", "sr-invoices");
        await using var provider = Producer(servers, "sr-billing", s => s
            .AddSerializer(new AvroSerializer<GenericRecord>(registry))
            .AddSerializer(new JsonSerializer<Invoice>(registry)));
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();

        await unit.ExecuteAsync(async (tx, ct) =>
        {
            await tx.ProduceAsync(orders, new Message<string, GenericRecord> { Key = "o-1", Value = Order(OrderV1, "o-1", 12.5) }, ct);
            await tx.ProduceAsync(invoices, new Message<string, Invoice> { Key = "o-1", Value = new Invoice { OrderId = "o-1", Total = 12.5 } }, ct);
        });
        await unit.Awaiting(u => u.ExecuteAsync(async (tx, ct) =>
        {
            await tx.ProduceAsync(orders, new Message<string, GenericRecord> { Key = "o-2", Value = Order(OrderV1, "o-2", 3) }, ct);
            await tx.ProduceAsync(invoices, new Message<string, Invoice> { Key = "o-2", Value = new Invoice { OrderId = "o-2", Total = 3 } }, ct);
            throw new InvalidOperationException("the work fails after writing to both topics: nothing of it may be visible");
        })).Should().ThrowAsync<InvalidOperationException>();

        var readOrders = await ReadCommittedAsync(servers, orders, new AvroDeserializer<GenericRecord>(registry));
        readOrders.Select(o => ((string)o["id"], (double)o["amount"])).Should().Equal(("o-1", 12.5));
        var readInvoices = await ReadCommittedAsync(servers, invoices, new JsonDeserializer<Invoice>());
        readInvoices.Select(i => (i.OrderId, i.Total)).Should().Equal(("o-1", 12.5));
        (await registry.GetAllSubjectsAsync()).Should().Contain([orders + "-value", invoices + "-value"]);
    }

    [SkippableFact]
    public async Task RealRegistry_a_processor_turns_Avro_orders_into_Avro_shipments_exactly_once()
    {
        var (servers, registry) = Require();
        var (orders, shipments) = await TwoTopicsAsync("sr-orders", "sr-shipments");
        var serializer = new AvroSerializer<GenericRecord>(registry);
        using (var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = servers }).Build())
        {
            foreach (var id in new[] { "o-1", "o-2", "o-3", "o-4", "o-5" })
            {
                var value = await serializer.SerializeAsync(Order(OrderV1, id, 1), new SerializationContext(MessageComponentType.Value, orders));
                await producer.ProduceAsync(orders, new Message<string, byte[]> { Key = id, Value = value });
            }
        }

        var settings = new Shipping(shipments, FailOnceFor: "o-3");
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton(settings);
        builder.Services.AddKafkaTransactions(o =>
            {
                o.BootstrapServers = servers;
                o.TransactionalId = KafkaTxHost.UniqueName("sr-shipper");
            })
            .AddDeserializer(new AvroDeserializer<GenericRecord>(registry))
            .AddSerializer(new AvroSerializer<GenericRecord>(registry))
            .AddTransactionalProcessor<ShipOrders>(p =>
            {
                p.Topics.Add(orders);
                p.GroupId = KafkaTxHost.UniqueName("sr-shippers");
                p.MaxBatchSize = 2;
                p.Retry.BaseDelay = TimeSpan.FromMilliseconds(50);
            });
        using var host = builder.Build();

        await host.StartAsync();
        await Eventually.Until(() => KafkaTopicReader.ReadTopic(servers, shipments, timeout: Deadline).Count >= 5, Deadline, "five shipments committed");
        await host.StopAsync();

        var shipped = await ReadCommittedAsync(servers, shipments, new AvroDeserializer<GenericRecord>(registry));
        shipped.Select(s => (string)s["orderId"]).Order(StringComparer.Ordinal).Should().Equal(["o-1", "o-2", "o-3", "o-4", "o-5"], "0 duplicates, 0 losses, although o-3's first transaction aborted after writing its shipment");
        shipped.Should().OnlyContain(s => (string)s["status"] == "shipped");
        settings.Failed.Should().BeTrue("o-3's first transaction failed");
        KafkaTopicReader.ReadTopic(servers, orders + ".DLT", IsolationLevel.ReadUncommitted, TimeSpan.FromSeconds(5)).Should().BeEmpty();
    }

    [SkippableFact]
    public async Task RealRegistry_an_incompatible_schema_change_is_refused_per_the_subjects_compatibility_and_writes_nothing()
    {
        var (servers, registry) = Require();
        var orders = (await broker.CreateTopicsAsync(1, "sr-evolving"))[0];
        _topics.Add(orders);
        var subject = orders + "-value";
        await using var provider = Producer(servers, "sr-evolving", s => s.AddSerializer(new AvroSerializer<GenericRecord>(registry)));
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.ExecuteAsync((tx, ct) => tx.ProduceAsync(orders, new Message<string, GenericRecord> { Key = "o-1", Value = Order(OrderV1, "o-1", 1) }, ct));
        await registry.UpdateCompatibilityAsync(Compatibility.Backward, subject);
        var runs = 0;

        var refused = await unit.Awaiting(u => u.ExecuteAsync(async (tx, ct) =>
        {
            runs++;
            await tx.ProduceAsync(orders, new Message<string, GenericRecord> { Key = "o-2", Value = Order(OrderIncompatible, "o-2", 2, ("currency", "EUR")) }, ct);
        })).Should().ThrowAsync<KafkaTransactionException>();
        await unit.ExecuteAsync((tx, ct) => tx.ProduceAsync(orders, new Message<string, GenericRecord> { Key = "o-3", Value = Order(OrderCompatible, "o-3", 3) }, ct));

        refused.Which.Kind.Should().Be(TransactionErrorKind.Rejected, "the record's own failure: its schema change is refused");
        refused.Which.Error.Code.Should().Be(ErrorCode.Local_ValueSerialization);
        refused.Which.InnerException.Should().BeOfType<SchemaRegistryException>()
            .Which.Status.Should().Be(System.Net.HttpStatusCode.Conflict, "BACKWARD compatibility refuses a new field without a default");
        runs.Should().Be(1, "an incompatible schema is the record's own failure: running the work again cannot help");
        (await registry.GetSubjectVersionsAsync(subject)).Should().HaveCount(2, "version 1 and the compatible change; never the refused one");
        var read = await ReadCommittedAsync(servers, orders, new AvroDeserializer<GenericRecord>(registry));
        read.Select(o => (string)o["id"]).Should().Equal("o-1", "o-3");
    }

    private (string Servers, CachedSchemaRegistryClient Registry) Require()
    {
        var servers = broker.RequireBroker();
        var url = Environment.GetEnvironmentVariable(SchemaRegistryUrlVariable);
        Skip.If(string.IsNullOrWhiteSpace(url), $"No Schema Registry: {SchemaRegistryUrlVariable} is not set. These tests need a real registry's subjects, ids and compatibility checks; the in-memory FakeSchemaRegistryClient covers the rest in KafkaTx.Tests.");
        _url = url;
        _registry = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = url });
        return (servers, _registry);
    }

    private async Task<(string, string)> TwoTopicsAsync(string first, string second)
    {
        var names = await broker.CreateTopicsAsync(2, first, second);
        _topics.AddRange(names);
        return (names[0], names[1]);
    }

    private static ServiceProvider Producer(string servers, string prefix, Action<IKafkaTransactionsBuilder> serdes)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        var builder = services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = servers;
            o.TransactionalId = KafkaTxHost.UniqueName(prefix);
            o.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
        });
        serdes(builder);
        return services.BuildServiceProvider();
    }

    private static GenericRecord Order(RecordSchema schema, string id, double amount, params (string Field, object Value)[] more)
    {
        var order = new GenericRecord(schema);
        order.Add("id", id);
        order.Add("amount", amount);
        foreach (var (field, value) in more)
        {
            order.Add(field, value);
        }

        return order;
    }

    private static async Task<List<T>> ReadCommittedAsync<T>(string servers, string topic, IAsyncDeserializer<T> deserializer)
    {
        var values = new List<T>();
        foreach (var record in KafkaTopicReader.ReadTopic(servers, topic, IsolationLevel.ReadCommitted, Deadline))
        {
            values.Add(await deserializer.DeserializeAsync(record.Value, record.Value is null, new SerializationContext(MessageComponentType.Value, topic)));
        }

        return values;
    }

    private sealed record Shipping(string Topic, string FailOnceFor)
    {
        private int _failed;

        public bool Failed => Volatile.Read(ref _failed) == 1;

        public bool ShouldFail(string orderId) => orderId == FailOnceFor && Interlocked.Exchange(ref _failed, 1) == 0;
    }

    private sealed class ShipOrders(Shipping settings) : ITransactionalHandler<string, GenericRecord>
    {
        public async ValueTask HandleAsync(ConsumeResult<string, GenericRecord> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            var orderId = (string)record.Message.Value["id"];
            var shipment = new GenericRecord(ShipmentSchema);
            shipment.Add("orderId", orderId);
            shipment.Add("status", "shipped");
            await transaction.ProduceAsync(settings.Topic, new Message<string, GenericRecord> { Key = orderId, Value = shipment }, cancellationToken);
            if (settings.ShouldFail(orderId))
            {
                throw new TimeoutException($"warehouse timed out for {orderId}: the shipment just written must be aborted");
            }
        }
    }
}
