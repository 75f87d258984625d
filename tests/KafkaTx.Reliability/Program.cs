// A consume-transform-produce copier, run as a child process by the crash tests: it copies every record of the input
// topic to the output topic with KafkaTx's processor, and prints one line per committed transaction, so that the
// parent can kill it (SIGKILL) at any moment and time the next commit of its restarted incarnation.
//
//   dotnet KafkaTx.Reliability.dll copy --bootstrap-servers HOST:PORT --input T --output T --group G --transactional-id ID
//
// Output lines: "started", then "committed <transactions> <records>" after each commit.
using Confluent.Kafka;
using KafkaTx;
using KafkaTx.Reliability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

if (args.Length == 0 || args[0] != "copy")
{
    Console.Error.WriteLine("usage: copy --bootstrap-servers HOST:PORT --input TOPIC --output TOPIC --group GROUP --transactional-id ID");
    return 2;
}

string Arg(string name) =>
    Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{name} is required");

var output = Arg("--output");
var builder = Host.CreateApplicationBuilder();
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services.AddSingleton(new CopyTarget(output));
builder.Services
    .AddKafkaTransactions(o =>
    {
        o.BootstrapServers = Arg("--bootstrap-servers");
        o.TransactionalId = Arg("--transactional-id");
    })
    .AddTransactionalProcessor<CopyHandler>(p =>
    {
        p.Topics.Add(Arg("--input"));
        p.GroupId = Arg("--group");
        p.MaxBatchSize = 100;
    });
using var host = builder.Build();
await host.StartAsync();
Console.WriteLine("started");
var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
var reported = 0L;
while (processor.State is ProcessorState.Created or ProcessorState.Starting or ProcessorState.Running)
{
    if (processor.CommittedTransactions != reported)
    {
        reported = processor.CommittedTransactions;
        Console.WriteLine($"committed {reported} {processor.CommittedRecords}");
    }

    await Task.Delay(10);
}

await host.StopAsync();
Console.WriteLine($"ended {processor.State}");
return processor.State == ProcessorState.Stopped ? 0 : 1;

namespace KafkaTx.Reliability
{
    /// <summary>Where the copier writes.</summary>
    internal sealed record CopyTarget(string Topic);

    /// <summary>Copies each record, key and value unchanged.</summary>
    internal sealed class CopyHandler(CopyTarget target) : ITransactionalHandler<byte[], byte[]>
    {
        public ValueTask HandleAsync(ConsumeResult<byte[], byte[]> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            transaction.Produce(target.Topic, new Message<byte[], byte[]> { Key = record.Message.Key, Value = record.Message.Value });
            return ValueTask.CompletedTask;
        }
    }
}
