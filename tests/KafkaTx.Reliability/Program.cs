// KafkaTx's reliability harness. Exactly once is a claim about failures; this proves it the way Kafka's own system
// tests do, by copying records while the copier is killed.
//
//   crash   seed an input topic, copy it with KafkaTx's processor while killing the copier (SIGKILL) at random
//           moments and pausing one (SIGSTOP) while a replacement takes over, then check the output against the
//           input: exit code 0 only with no duplicate, no loss, order kept.
//           dotnet run --project tests/KafkaTx.Reliability -c Release -- crash [--records 100000] [--partitions 4]
//             [--kills 5] [--no-zombie] [--seed N] [--max-batch-size 100] [--bootstrap-servers HOST:PORT]
//   soak    copy for a long time on the in-memory Kafka with a fault every few seconds; report duplicates, losses
//           and memory every 10 s, which must stay flat.
//           dotnet run --project tests/KafkaTx.Reliability -c Release -- soak [--duration 00:10:00] [--fault-every 00:00:05]
//   copy    one copier, as the crash command runs it in a child process; prints "committed <transactions> <records>"
//           after each commit and "ended <state>" at the end.
//           dotnet KafkaTx.Reliability.dll copy --bootstrap-servers HOST:PORT --input T --output T --group G --transactional-id ID
using KafkaTx;
using KafkaTx.Reliability;
using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Crash;
using KafkaTx.Reliability.Soak;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

var arguments = new Arguments(args);
try
{
    switch (arguments.Command)
    {
        case "crash":
            return await CrashAsync(arguments);
        case "soak":
            return await SoakAsync(arguments);
        case "copy":
            return await CopyAsync(arguments);
        default:
            Console.Error.WriteLine("usage: crash | soak | copy (see the comment at the top of Program.cs, or tests/KafkaTx.Reliability/README.md)");
            return 2;
    }
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

static async Task<int> CrashAsync(Arguments arguments)
{
    var options = new CrashOptions
    {
        Records = arguments.Int("--records", 100_000),
        Partitions = arguments.Int("--partitions", 4),
        Kills = arguments.Int("--kills", 5),
        PausedZombie = !arguments.Flag("--no-zombie"),
        Seed = arguments.Int("--seed", Environment.TickCount),
        MaxBatchSize = arguments.Int("--max-batch-size", 100),
    };
    await using ICopierBackend backend = arguments.Optional("--bootstrap-servers") is { } servers
        ? new BrokerCopierBackend(servers)
        : new InMemoryCopierBackend();
    var report = await new CrashHarness(backend, options, Console.Out).RunAsync();
    report.Print(Console.Out);
    return report.ExactlyOnce ? 0 : 1;
}

static async Task<int> SoakAsync(Arguments arguments)
{
    var options = new SoakOptions
    {
        Duration = arguments.Duration("--duration", TimeSpan.FromMinutes(10)),
        FaultEvery = arguments.Duration("--fault-every", TimeSpan.FromSeconds(5)),
        Seed = arguments.Int("--seed", Environment.TickCount),
    };
    var report = await new SoakRunner(options, Console.Out).RunAsync();
    report.Print(Console.Out);
    return report.Passed ? 0 : 1;
}

static async Task<int> CopyAsync(Arguments arguments)
{
    var settings = new CopierSettings(
        arguments.Required("--bootstrap-servers"),
        arguments.Required("--input"),
        arguments.Required("--output"),
        arguments.Required("--group"),
        arguments.Required("--transactional-id"),
        arguments.Int("--max-batch-size", 100));
    if (arguments.Flag("--exit-with-parent"))
    {
        // The harness holds this process's standard input open: when the harness dies, so does its copier, instead
        // of copying on as an orphan that fences the next run's copiers.
        _ = Task.Run(() =>
        {
            Console.In.ReadToEnd();
            Environment.Exit(3);
        });
    }

    using var host = CopierApp.Build(settings, new CopyTarget(settings.Output));
    await host.StartAsync();
    Console.WriteLine("started");
    var processor = CopierApp.Processor(host);
    var stopping = host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
    var reported = 0L;
    while ((processor.State is ProcessorState.Created or ProcessorState.Starting or ProcessorState.Running) && !stopping.IsCancellationRequested)
    {
        if (processor.CommittedTransactions != reported)
        {
            reported = processor.CommittedTransactions;
            Console.WriteLine($"committed {reported} {processor.CommittedRecords}");
        }

        await Task.Delay(10);
    }

    await host.StopAsync(); // SIGTERM asked for it, or the processor stopped the application
    Console.WriteLine($"ended {processor.State}");
    return processor.State == ProcessorState.Stopped ? 0 : 1;
}
