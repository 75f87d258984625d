// A minimal API over KafkaTx, as a new application writes one:
//   POST /orders   validates the order, then writes it to `orders` and an audit record to `audit-log` in one transaction;
//   a processor    turns each order into a shipment in `shipments`, exactly once;
//   GET /health    KafkaTx's health checks (Degraded while no broker answers, Unhealthy when fenced or faulted).
//
//   dotnet run --project samples/WebApi                                         (an in-memory Kafka inside the process)
//   dotnet run --project samples/WebApi -- --bootstrap-servers localhost:9092   (a broker; or KAFKATX_BOOTSTRAP_SERVERS)
using KafkaTx;
using KafkaTx.Testing;
using WebApi;

var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddCommandLine(args, new Dictionary<string, string> { ["--bootstrap-servers"] = "Kafka:BootstrapServers" });
var kafka = builder.Configuration.GetSection("Kafka");

// The endpoint's producer. Concurrent requests queue on it, one transaction at a time; InitializeOnStart runs
// InitTransactions while the host starts, so that the first request does not pay for it.
builder.Services
    .AddKafkaTransactions(Producers.Web, o => Configure(o, "webapi-orders"))
    .UseInMemoryKafkaWhenNoBootstrapServers(CreateTopics)
    .AddSerializer(new KafkaJsonSerde<Order>())
    .AddSerializer(new KafkaJsonSerde<AuditEntry>())
    .AddHealthChecks()
    .InitializeOnStart();

// The processor's producer, a second one: a processor owns its producer and transactional.id, nothing else may write through it.
builder.Services
    .AddKafkaTransactions(Producers.Shipping, o => Configure(o, "webapi-shipping"))
    .UseInMemoryKafkaWhenNoBootstrapServers(CreateTopics) // before the processor subscribes
    .AddDeserializer(new KafkaJsonSerde<Order>())
    .AddSerializer(new KafkaJsonSerde<Shipment>())
    .AddHealthChecks()
    .AddTransactionalProcessor<ShipmentHandler>(p =>
    {
        p.Topics.Add(Topics.Orders);
        p.GroupId = "webapi-shipping";
    });

builder.Services.AddProblemDetails();
builder.Services.AddExceptionHandler<KafkaExceptionHandler>(); // every failure → its status, in one place
builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true); // an unreadable body goes there too

var app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages(); // a ProblemDetails body for the errors ASP.NET Core answers itself (415, 404, 405)
app.MapHealthChecks("/health");
app.MapPost("/orders", OrderEndpoint.PostAsync);
app.Run();

// In memory only, once per builder before its first client: on a broker, create the topics first (README.md).
// Both builders run it; creating a topic that exists with the same partition count does nothing.
static void CreateTopics(InMemoryKafkaCluster cluster)
{
    foreach (var topic in Topics.All)
    {
        cluster.CreateTopic(topic, partitions: 3);
    }
}

void Configure(KafkaTransactionsOptions options, string transactionalIdPrefix)
{
    options.BootstrapServers = kafka["BootstrapServers"]; // none: the in-memory Kafka (UseInMemoryKafkaWhenNoBootstrapServers)
    options.TransactionalIdPrefix = transactionalIdPrefix;
    options.InstanceId = kafka["InstanceId"];              // stable per instance, unique across instances (appsettings.json)
}

/// <summary>Public for the tests' WebApplicationFactory&lt;Program&gt;.</summary>
public partial class Program;
