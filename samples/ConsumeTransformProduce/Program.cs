// The order processor: incoming-orders -> processed-orders (8% tax), audit-log and ledger-updates, exactly once.
// The sample seeds orders, runs the processor, lets one order fail mid-transaction, restarts the process half-way,
// then reads the outputs with read_committed and checks that every order is in each output topic exactly once.
//
//   dotnet run --project samples/ConsumeTransformProduce                                   (embedded in-memory Kafka)
//   dotnet run --project samples/ConsumeTransformProduce -- --bootstrap-servers host:9092  (a real broker)
//   dotnet run --project samples/ConsumeTransformProduce -- --telemetry                    (KafkaTx's spans and metrics on the console, through OpenTelemetry)
using System.Globalization;
using ConsumeTransformProduce;
using Confluent.Kafka;
using KafkaTx;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

const int OrderCount = 20;
var backend = Backend.Choose(args);
var telemetry = args.Contains("--telemetry");
Console.WriteLine($"Backend: {backend.Description}");

var run = Guid.NewGuid().ToString("N")[..8]; // fresh topics per run, so that earlier runs do not count
string Topic(string name) => $"{name}-{run}";
var input = Topic("incoming-orders");
var topics = new OrderTopics(Topic("processed-orders"), Topic("audit-log"), Topic("ledger-updates"));
string[] outputs = [topics.ProcessedOrders, topics.AuditLog, topics.LedgerUpdates];

backend.CreateTopics(3, [input, .. outputs]);
SeedOrders(first: 0, count: OrderCount / 2);

var failures = new FailureInjection();
using (var first = BuildProcessor(failures))
{
    await first.StartAsync();
    var processor = first.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
    await WaitUntil(() => processor.CommittedRecords >= OrderCount / 2, "the first half of the orders is committed");
    Console.WriteLine($"First process: {processor.CommittedRecords} orders committed in {processor.CommittedTransactions} transactions; the one holding '{failures.FailOnceFor}' failed, was aborted and redone.");
    await first.StopAsync();
    Console.WriteLine("First process stopped. More orders arrive; a new process starts with the same transactional.id.");
}

SeedOrders(first: OrderCount / 2, count: OrderCount / 2);

using (var second = BuildProcessor(failures))
{
    await second.StartAsync(); // same transactional.id: its InitTransactions fences any zombie of the first run
    await WaitUntil(() => Count(CommittedReader.ReadVisible(backend, outputs)) is var seen && seen.Count == OrderCount && seen.Values.All(c => c.Count == outputs.Length), "every order is in every output");
    await second.StopAsync();
}

var visible = CommittedReader.ReadVisible(backend, outputs);
var perOrder = Count(visible);
var exactlyOnce = perOrder.Count == OrderCount && perOrder.Values.All(seen => outputs.All(t => seen.GetValueOrDefault(t) == 1));
var duplicates = perOrder.Values.Sum(seen => seen.Values.Sum(n => n - 1));
Console.WriteLine();
Console.WriteLine($"{"order",-10} {"processed-orders",16} {"audit-log",16} {"ledger-updates",16}");
foreach (var (order, seen) in perOrder.OrderBy(p => p.Key, StringComparer.Ordinal))
{
    Console.WriteLine($"{order,-10} {string.Join(" ", outputs.Select(o => $"{seen.GetValueOrDefault(o),16}"))}");
}

Console.WriteLine();
Console.WriteLine($"Orders seen: {perOrder.Count} of {OrderCount}; duplicates: {duplicates}.");
if (exactlyOnce)
{
    Console.WriteLine("Verdict: exactly once. Every order is in each output topic once, despite the failure and the restart.");
    return 0;
}

Console.WriteLine("Verdict: NOT exactly once.");
return 1;

IHost BuildProcessor(FailureInjection injected)
{
    var builder = Host.CreateApplicationBuilder();
    builder.Logging.SetMinimumLevel(LogLevel.Warning);
    builder.Services.AddSingleton(injected).AddSingleton(topics);
    if (telemetry)
    {
        // KafkaTx reports through System.Diagnostics: OpenTelemetry only needs the source's and the meter's name.
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("order-processor"))
            .WithTracing(tracing => tracing.AddSource("KafkaTx").AddConsoleExporter())
            .WithMetrics(metrics => metrics.AddMeter("KafkaTx").AddConsoleExporter());
    }

    backend.Use(builder.Services
        .AddKafkaTransactions(options =>
        {
            options.BootstrapServers = backend.BootstrapServers;
            options.TransactionalIdPrefix = "order-processor-" + run;
            options.InstanceId = "0"; // stable across the restart: the new process fences the old one
        }))
        .AddDeserializer(new Json<Order>())
        .AddSerializer(new Json<ProcessedOrder>())
        .AddSerializer(new Json<AuditEntry>())
        .AddSerializer(new Json<LedgerUpdate>())
        .AddTransactionalProcessor<OrderHandler>(options =>
        {
            options.Topics.Add(input);
            options.GroupId = "order-processors-" + run;
            options.MaxBatchSize = 5;
            options.Retry.BaseDelay = TimeSpan.FromMilliseconds(50);
        });
    return builder.Build();
}

void SeedOrders(int first, int count)
{
    using var producer = backend.CreateProducer();
    var json = new Json<Order>();
    for (var i = first; i < first + count; i++)
    {
        var id = "order-" + i.ToString("D3", CultureInfo.InvariantCulture);
        producer.Produce(input, new Message<byte[]?, byte[]?>
        {
            Key = System.Text.Encoding.UTF8.GetBytes(id),
            Value = json.Serialize(new Order(id, 10m + i), new SerializationContext(MessageComponentType.Value, input)),
            Headers = telemetry ? UpstreamTrace() : null,
        });
    }

    producer.Flush(TimeSpan.FromSeconds(30));
    Console.WriteLine($"Seeded {count} orders ({first}..{first + count - 1}) into {input}.");
}

// As an upstream service using KafkaTx (or any traced producer) would write it: the order's own trace, which the
// processor's span for the order continues.
static Headers UpstreamTrace()
{
    // Sampled upstream: OpenTelemetry's default sampler follows the parent's decision, so an unsampled trace stays unrecorded here too.
    using var checkout = new System.Diagnostics.Activity("POST /checkout") { ActivityTraceFlags = System.Diagnostics.ActivityTraceFlags.Recorded }.Start();
    return new Headers { { "traceparent", System.Text.Encoding.ASCII.GetBytes(checkout.Id!) } };
}

static Dictionary<string, Dictionary<string, int>> Count(List<(string Topic, string Key, string Value)> records) =>
    records.GroupBy(r => r.Key).ToDictionary(g => g.Key, g => g.GroupBy(r => r.Topic).ToDictionary(t => t.Key, t => t.Count()));

static async Task WaitUntil(Func<bool> condition, string what)
{
    var deadline = DateTime.UtcNow.AddSeconds(60);
    while (!condition())
    {
        if (DateTime.UtcNow > deadline)
        {
            throw new TimeoutException($"Timed out waiting until {what}.");
        }

        await Task.Delay(100);
    }
}
