// Parallel handling inside one instance: payments from 40 customers, each scored by a slow service (1 to 5 ms a call,
// awaited with the handler's cancellation token). The sample copies them once one at a time (MaxConcurrency 1) and
// once 32 at a time in key order (one customer's payments in order, different customers concurrently), prints both
// rates, then reads both outputs with read_committed and checks each: every payment exactly once, each customer's
// payments in order.
//
//   dotnet run --project samples/ParallelProcessing                                   (embedded in-memory Kafka)
//   dotnet run --project samples/ParallelProcessing -- --bootstrap-servers host:9092  (a real broker)
//   dotnet run --project samples/ParallelProcessing -- --payments 2000 --max-concurrency 64
using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaTx;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ParallelProcessing;

const int Customers = 40;
var payments = IntOption("--payments", 600);
var maxConcurrency = IntOption("--max-concurrency", 32);
var backend = Backend.Choose(args);
Console.WriteLine($"Backend: {backend.Description}");

var run = Guid.NewGuid().ToString("N")[..8]; // fresh topics per run, so that earlier runs do not count
var input = $"payments-{run}";
backend.CreateTopics(1, input);
SeedPayments();

var sequential = await CopyAsync("sequential", concurrency: 1);
var parallel = await CopyAsync("parallel", maxConcurrency);
Console.WriteLine();
Console.WriteLine(sequential.Line);
Console.WriteLine(parallel.Line);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Speed-up: {sequential.Elapsed / parallel.Elapsed:F1}x"));
Console.WriteLine();
Console.WriteLine(sequential.Check);
Console.WriteLine(parallel.Check);
if (sequential.Passed && parallel.Passed)
{
    Console.WriteLine("Verdict: exactly once and in order per customer, sequential and parallel.");
    return 0;
}

Console.WriteLine("Verdict: NOT exactly once and in order per customer.");
return 1;

async Task<Outcome> CopyAsync(string name, int concurrency)
{
    var output = $"scored-payments-{name}-{run}";
    backend.CreateTopics(1, output);
    var scoring = new ScoringService();
    var builder = Host.CreateApplicationBuilder();
    builder.Logging.SetMinimumLevel(LogLevel.Warning);
    builder.Services.AddSingleton(scoring).AddSingleton(new ScoredPayments(output));
    backend.Use(builder.Services.AddKafkaTransactions(options =>
        {
            options.BootstrapServers = backend.BootstrapServers;
            options.TransactionalIdPrefix = $"payment-scorer-{name}-{run}";
            options.InstanceId = "0"; // one instance; in production: stable per instance (for example the pod ordinal)
        }))
        .AddTransactionalProcessor<ScoringHandler>(options =>
        {
            options.Topics.Add(input);
            options.GroupId = $"payment-scorers-{name}-{run}";
            options.MaxConcurrency = concurrency; // 1: one record at a time, today's default
            options.Order = ProcessingOrder.Key;  // one customer's payments in order; different customers concurrently
        });
    using var host = builder.Build();
    var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
    await host.StartAsync();
    var deadline = DateTime.UtcNow.AddMinutes(2);
    while (processor.CommittedRecords < payments)
    {
        if (DateTime.UtcNow > deadline || processor.State is ProcessorState.Faulted or ProcessorState.Fenced)
        {
            throw new TimeoutException($"The {name} run committed {processor.CommittedRecords} of {payments} payments; the processor is {processor.State}.");
        }

        await Task.Delay(5);
    }

    var elapsed = Stopwatch.GetElapsedTime(scoring.FirstCallTimestamp);
    await host.StopAsync();
    var label = concurrency == 1 ? "Sequential (MaxConcurrency 1):" : $"Parallel (MaxConcurrency {concurrency}, key order):";
    var line = string.Create(CultureInfo.InvariantCulture, $"{label,-42} {payments} payments in {elapsed.TotalSeconds:F2} s, {payments / elapsed.TotalSeconds:N0} payments/s");
    var (passed, check) = Check(name, output);
    return new Outcome(elapsed, line, passed, check);
}

// Every payment once; each customer's in the order it was paid (its sequence number counts up from 0).
(bool Passed, string Check) Check(string name, string output)
{
    var visible = CommittedReader.ReadVisible(backend, output);
    var next = new Dictionary<string, int>(StringComparer.Ordinal);
    var seen = new HashSet<string>(StringComparer.Ordinal);
    int duplicates = 0, outOfOrder = 0;
    foreach (var (_, customer, value) in visible)
    {
        var payment = value.Split(' ')[0]; // "customer-07#12"
        if (!seen.Add(payment))
        {
            duplicates++;
            continue;
        }

        var sequence = int.Parse(payment[(payment.IndexOf('#', StringComparison.Ordinal) + 1)..], CultureInfo.InvariantCulture);
        outOfOrder += sequence == next.GetValueOrDefault(customer) ? 0 : 1;
        next[customer] = sequence + 1;
    }

    var passed = seen.Count == payments && duplicates == 0 && outOfOrder == 0;
    return (passed, $"{name,-10} read_committed: {seen.Count} of {payments} payments; duplicates: {duplicates}; out of order per customer: {outOfOrder}.");
}

void SeedPayments()
{
    using var producer = backend.CreateProducer();
    var perCustomer = new int[Customers];
    for (var i = 0; i < payments; i++)
    {
        // Customers interleaved, as payments arrive: customer (i * 7) % 40, so that one customer's payments are spread over the topic.
        var customer = i * 7 % Customers;
        var key = "customer-" + customer.ToString("D2", CultureInfo.InvariantCulture);
        var value = $"{key}#{perCustomer[customer]++}";
        producer.Produce(input, new Message<byte[]?, byte[]?> { Key = System.Text.Encoding.UTF8.GetBytes(key), Value = System.Text.Encoding.UTF8.GetBytes(value) });
    }

    producer.Flush(TimeSpan.FromSeconds(30));
    Console.WriteLine($"Seeded {payments} payments of {Customers} customers into {input} (1 partition).");
}

int IntOption(string option, int fallback)
{
    var i = Array.IndexOf(args, option);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

internal sealed record Outcome(TimeSpan Elapsed, string Line, bool Passed, string Check);
