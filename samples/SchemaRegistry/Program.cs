// Avro orders -> Avro shipments through Confluent's Schema Registry serdes, exactly once. The sample seeds Avro
// orders, runs a processor that turns each into a shipment (one fails once after writing, so its transaction
// aborts), then reads the shipments back with read_committed and the Avro deserializer and checks each order is
// shipped exactly once.
//
//   dotnet run --project samples/SchemaRegistry                                          (embedded in-memory Kafka and registry)
//   dotnet run --project samples/SchemaRegistry -- --schema-registry-url http://host:8081 --bootstrap-servers host:9092
//
// KAFKATX_SCHEMA_REGISTRY_URL and KAFKATX_BOOTSTRAP_SERVERS work as the arguments do.
using System.Globalization;
using Avro.Generic;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using KafkaTx;
using KafkaTx.Testing.SchemaRegistry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SchemaRegistrySample;

const int OrderCount = 10;
var backend = Backend.Choose(args);
var urlIndex = Array.IndexOf(args, "--schema-registry-url");
var registryUrl = urlIndex >= 0 && urlIndex + 1 < args.Length ? args[urlIndex + 1] : Environment.GetEnvironmentVariable("KAFKATX_SCHEMA_REGISTRY_URL");
using ISchemaRegistryClient registry = string.IsNullOrWhiteSpace(registryUrl)
    ? new FakeSchemaRegistryClient()
    : new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registryUrl });
Console.WriteLine($"Backend: {backend.Description}");
Console.WriteLine(string.IsNullOrWhiteSpace(registryUrl)
    ? "Schema registry: embedded in-memory (KafkaTx.Testing.SchemaRegistry's FakeSchemaRegistryClient)"
    : $"Schema registry: {registryUrl}");

var run = Guid.NewGuid().ToString("N")[..8]; // fresh topics, hence fresh subjects, per run
var ordersTopic = $"avro-orders-{run}";
var settings = new ShippingSettings($"avro-shipments-{run}", FailOnceFor: "order-004");
backend.CreateTopics(3, ordersTopic, settings.ShipmentsTopic);

// Another application writes the orders, with the Avro serializer: it registers the order schema under <topic>-value.
using (var producer = backend.CreateProducer())
{
    var serializer = new AvroSerializer<GenericRecord>(registry);
    for (var i = 0; i < OrderCount; i++)
    {
        var id = "order-" + i.ToString("D3", CultureInfo.InvariantCulture);
        var value = await serializer.SerializeAsync(Schemas.NewOrder(id, 10 + i), new SerializationContext(MessageComponentType.Value, ordersTopic));
        producer.Produce(ordersTopic, new Message<byte[]?, byte[]?> { Key = System.Text.Encoding.UTF8.GetBytes(id), Value = value });
    }

    producer.Flush(TimeSpan.FromSeconds(30));
}

Console.WriteLine($"Seeded {OrderCount} Avro orders into {ordersTopic}.");

var builder = Host.CreateApplicationBuilder();
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services.AddSingleton(settings);
backend.Use(builder.Services.AddKafkaTransactions(options =>
    {
        options.BootstrapServers = backend.BootstrapServers;
        options.TransactionalIdPrefix = "avro-shipper-" + run;
        options.InstanceId = "0"; // one instance: stable across restarts
    }))
    .AddDeserializer(new AvroDeserializer<GenericRecord>(registry))   // IAsyncDeserializer: awaited before the handler
    .AddSerializer(new AvroSerializer<GenericRecord>(registry))       // IAsyncSerializer: written with ProduceAsync
    .AddTransactionalProcessor<ShipOrders>(options =>
    {
        options.Topics.Add(ordersTopic);
        options.GroupId = "avro-shippers-" + run;
        options.MaxBatchSize = 4;
        options.Retry.BaseDelay = TimeSpan.FromMilliseconds(50);
    });
using (var host = builder.Build())
{
    await host.StartAsync();
    var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
    var deadline = DateTime.UtcNow.AddSeconds(60);
    while (processor.CommittedRecords < OrderCount)
    {
        if (DateTime.UtcNow > deadline)
        {
            throw new TimeoutException("Timed out waiting until every order is committed.");
        }

        await Task.Delay(100);
    }

    Console.WriteLine($"Processor: {processor.CommittedRecords} orders committed in {processor.CommittedTransactions} transactions; the one holding '{settings.FailOnceFor}' failed after writing its shipment, was aborted and redone.");
    await host.StopAsync();
}

// Read the shipments as any read_committed consumer does, and decode them with the schema the registry holds.
var deserializer = new AvroDeserializer<GenericRecord>(registry);
var shipments = new List<(string OrderId, string Status)>();
foreach (var bytes in ReadCommitted(settings.ShipmentsTopic))
{
    var shipment = await deserializer.DeserializeAsync(bytes, false, new SerializationContext(MessageComponentType.Value, settings.ShipmentsTopic));
    shipments.Add(((string)shipment["orderId"], (string)shipment["status"]));
}

var perOrder = shipments.GroupBy(s => s.OrderId).ToDictionary(g => g.Key, g => g.Count());
var duplicates = perOrder.Values.Sum(n => n - 1);
var subjects = (await registry.GetAllSubjectsAsync()).Where(s => s.Contains(run, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
Console.WriteLine();
Console.WriteLine($"Subjects registered: {string.Join(", ", subjects)}");
Console.WriteLine($"Shipments decoded from Avro (read_committed): {shipments.Count}; orders shipped: {perOrder.Count} of {OrderCount}; duplicates: {duplicates}; all 'shipped': {(shipments.All(s => s.Status == "shipped") ? "yes" : "no")}.");
Console.WriteLine($"{settings.FailOnceFor}, whose first transaction aborted after writing its shipment, shipped {perOrder.GetValueOrDefault(settings.FailOnceFor)} time(s).");
if (perOrder.Count == OrderCount && perOrder.Values.All(n => n == 1) && subjects.Count == 2)
{
    Console.WriteLine("Verdict: exactly once. Every Avro order became one Avro shipment, despite the aborted transaction.");
    return 0;
}

Console.WriteLine("Verdict: NOT exactly once.");
return 1;

List<byte[]> ReadCommitted(string topic) =>
    [.. CommittedReader.ReadVisibleBytes(backend, topic).Select(r => r.Value).OfType<byte[]>()];
