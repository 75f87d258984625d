// The seed's Task API: creating a task writes task-events, audit-log and notification-queue in one Kafka
// transaction. Task 1 commits; task 2 fails half-way and is aborted; a read_committed consumer then shows that
// task 1 is in all three topics and task 2 in none.
//
//   dotnet run --project samples/AtomicMultiTopicWrites                                   (embedded in-memory Kafka)
//   dotnet run --project samples/AtomicMultiTopicWrites -- --bootstrap-servers host:9092  (a real broker)
using AtomicMultiTopicWrites;
using KafkaTx;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

var backend = Backend.Choose(args);
Console.WriteLine($"Backend: {backend.Description}");

var builder = Host.CreateApplicationBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
backend.Use(builder.Services
    .AddKafkaTransactions(options =>
    {
        options.BootstrapServers = backend.BootstrapServers;
        options.TransactionalIdPrefix = "task-api";
        options.InstanceId = Environment.GetEnvironmentVariable("KAFKATX_INSTANCE_ID") ?? "sample-0"; // stable per instance
    }))
    .AddSerializer(new KafkaJsonSerde<TaskCreated>())
    .AddSerializer(new KafkaJsonSerde<AuditEntry>())
    .AddSerializer(new KafkaJsonSerde<Notification>());
builder.Services.AddSingleton<TaskService>();

using var host = builder.Build();
await host.StartAsync(); // validates the KafkaTx options before anything is sent

var tasks = host.Services.GetRequiredService<TaskService>();
var run = Guid.NewGuid().ToString("N")[..8]; // keeps this run's tasks apart from earlier runs on a real broker
var committed = new TaskCreated($"task-{run}-1", "Write the quarterly report", "user-456");
var failing = new TaskCreated($"task-{run}-2", "Review the budget", "user-789");

await tasks.CreateTaskAsync(committed);
Console.WriteLine($"Created {committed.TaskId}: committed to {TaskService.TaskEvents}, {TaskService.AuditLog} and {TaskService.NotificationQueue}.");

try
{
    await tasks.CreateTaskAsync(failing, failBeforeNotification: true);
}
catch (InvalidOperationException e)
{
    Console.WriteLine($"Creating {failing.TaskId} failed ({e.Message}); its transaction was aborted.");
}

var visible = CommittedReader.ReadVisible(backend, TaskService.TaskEvents, TaskService.AuditLog, TaskService.NotificationQueue)
    .Where(r => r.Value.Contains(run, StringComparison.Ordinal))
    .ToList();
Console.WriteLine();
Console.WriteLine("What a read_committed consumer sees of this run:");
foreach (var (topic, key, value) in visible.OrderBy(r => r.Topic, StringComparer.Ordinal))
{
    Console.WriteLine($"  {topic,-19} {key,-17} {value}");
}

var firstEverywhere = new[] { TaskService.TaskEvents, TaskService.AuditLog, TaskService.NotificationQueue }
    .All(topic => visible.Any(r => r.Topic == topic && r.Value.Contains(committed.TaskId, StringComparison.Ordinal)));
var secondNowhere = !visible.Any(r => r.Value.Contains(failing.TaskId, StringComparison.Ordinal));
Console.WriteLine();
Console.WriteLine($"{committed.TaskId} in all three topics: {(firstEverywhere ? "yes" : "NO")}");
Console.WriteLine($"{failing.TaskId} in none of them:      {(secondNowhere ? "yes" : "NO")}");
Console.WriteLine(firstEverywhere && secondNowhere ? "Verdict: atomic. Each task is in all three topics or in none." : "Verdict: NOT atomic.");

await host.StopAsync();
return firstEverywhere && secondNowhere ? 0 : 1;
