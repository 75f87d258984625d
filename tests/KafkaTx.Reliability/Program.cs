// KafkaTx's reliability harness. Exactly once is a claim about failures; this proves it the way Kafka's own system
// tests do, by copying records while the copier is killed.
//
//   crash   seed an input topic, copy it with KafkaTx's processor while killing the copier (SIGKILL) at random
//           moments and pausing one (SIGSTOP) while a replacement takes over, then check the output against the
//           input: exit code 0 only with no duplicate, no loss, order kept.
//           dotnet run --project tests/KafkaTx.Reliability -c Release -- crash [--records 100000] [--partitions 4]
//             [--kills 5] [--no-zombie] [--seed N] [--max-batch-size 100] [--handler copy|await|split]
//             [--handler-delay 00:00:00.001] [--random-delay] [--max-concurrency 1] [--order key|partition|unordered]
//             [--keys 1] [--batch-handler] [--ignore-cancellation 0] [--bootstrap-servers HOST:PORT]
//           --max-concurrency and --order go to the copier's processor; --keys N writes N keys per input partition
//           (input sequence s of partition p has key p{p}-k{s % N}), and the verifier then checks each key's order
//           instead of each partition's (none with --order unordered); --random-delay makes each handler call await
//           a uniform random time from 0 to --handler-delay; --batch-handler makes the copier's handler a batch
//           handler (ITransactionalBatchHandler: one call per transaction, each record copied in turn in the
//           --handler shape; MaxConcurrency 1); --ignore-cancellation N makes one call in N (await and split
//           handlers) ignore its token for 1 s, with the copier's ShutdownTimeout cut to 200 ms.
//   stop    seed an input topic, copy it while stopping the copier gracefully (in memory: the host's StopAsync; with
//           --bootstrap-servers: SIGTERM to the child process) each time a handler is awaiting a call with its
//           cancellation token, restarting it after each stop, then check the output record by record: exit code 0
//           only with no duplicate, no loss, order kept, the input committed to its end, and every stop landed in an
//           await and ended cleanly.
//           dotnet run --project tests/KafkaTx.Reliability -c Release -- stop [--records 20000] [--partitions 4]
//             [--stops 10] [--handler split|await] [--handler-delay 00:00:00.001] [--stop-call 00:00:00.100]
//             [--seed N] [--max-batch-size 100] [--random-delay] [--max-concurrency 1] [--order key|partition|unordered]
//             [--keys 1] [--batch-handler] [--ignore-cancellation 0] [--bootstrap-servers HOST:PORT]
//   soak    copy for a long time on the in-memory Kafka with a fault every few seconds; report duplicates, losses
//           and memory every 10 s, which must stay flat.
//           dotnet run --project tests/KafkaTx.Reliability -c Release -- soak [--duration 00:10:00] [--fault-every 00:00:05]
//   copy    one copier, as the crash and stop commands run it in a child process; prints "committed <transactions>
//           <records>" after each commit and "ended <state>" at the end; with --exit-with-parent it reads its standard
//           input by line ("arm-stop N" arms the handler's next call, see CopyTarget.ArmStop) and exits when it closes.
//           dotnet KafkaTx.Reliability.dll copy --bootstrap-servers HOST:PORT --input T --output T --group G --transactional-id ID
//             [--max-batch-size 100] [--handler copy|await|split] [--handler-delay 00:00:00.001] [--stop-call 00:00:00.100]
//             [--random-delay] [--max-concurrency 1] [--order key|partition|unordered] [--batch-handler] [--ignore-cancellation 0]
using System.Globalization;
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
        case "stop":
            return await StopAsync(arguments);
        case "soak":
            return await SoakAsync(arguments);
        case "copy":
            return await CopyAsync(arguments);
        default:
            Console.Error.WriteLine("usage: crash | stop | soak | copy (see the comment at the top of Program.cs, or tests/KafkaTx.Reliability/README.md)");
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
        Handler = HandlerShapes.Parse(arguments.Optional("--handler") ?? "copy"),
        HandlerDelay = arguments.Duration("--handler-delay", TimeSpan.FromMilliseconds(1)),
        RandomDelay = arguments.Flag("--random-delay"),
        Concurrency = CopyConcurrency.Parse(arguments),
    };
    await using var backend = Backend(arguments);
    var report = await new CrashHarness(backend, options, Console.Out).RunAsync();
    report.Print(Console.Out);
    return report.ExactlyOnce ? 0 : 1;
}

static async Task<int> StopAsync(Arguments arguments)
{
    var options = new StopOptions
    {
        Records = arguments.Int("--records", 20_000),
        Partitions = arguments.Int("--partitions", 4),
        Stops = arguments.Int("--stops", 10),
        Seed = arguments.Int("--seed", Environment.TickCount),
        MaxBatchSize = arguments.Int("--max-batch-size", 100),
        Handler = HandlerShapes.Parse(arguments.Optional("--handler") ?? "split"),
        HandlerDelay = arguments.Duration("--handler-delay", TimeSpan.FromMilliseconds(1)),
        StopCall = arguments.Duration("--stop-call", TimeSpan.FromMilliseconds(100)),
        RandomDelay = arguments.Flag("--random-delay"),
        Concurrency = CopyConcurrency.Parse(arguments),
    };
    await using var backend = Backend(arguments);
    var report = await new StopHarness(backend, options, Console.Out).RunAsync();
    report.Print(Console.Out);
    return report.Passed ? 0 : 1;
}

static ICopierBackend Backend(Arguments arguments) =>
    arguments.Optional("--bootstrap-servers") is { } servers ? new BrokerCopierBackend(servers) : new InMemoryCopierBackend();

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
        arguments.Int("--max-batch-size", 100))
    {
        Handler = HandlerShapes.Parse(arguments.Optional("--handler") ?? "copy"),
        HandlerDelay = arguments.Duration("--handler-delay", TimeSpan.FromMilliseconds(1)),
        StopCall = arguments.Duration("--stop-call", TimeSpan.FromMilliseconds(100)),
        RandomDelay = arguments.Flag("--random-delay"),
        MaxConcurrency = arguments.Int("--max-concurrency", 1),
        Order = ProcessingOrders.Parse(arguments.Optional("--order") ?? "key"),
        BatchHandler = arguments.Flag("--batch-handler"),
        IgnoreCancellationEvery = arguments.Int("--ignore-cancellation", 0),
    };
    var target = new CopyTarget(settings) { Announcements = Console.Out };
    if (arguments.Flag("--exit-with-parent"))
    {
        // The harness holds this process's standard input open: when the harness dies, so does its copier, instead
        // of copying on as an orphan that fences the next run's copiers. Meanwhile it sends commands, one a line.
        _ = Task.Run(() =>
        {
            while (Console.In.ReadLine() is { } line)
            {
                if (line.Split(' ') is ["arm-stop", var records] && long.TryParse(records, NumberStyles.None, CultureInfo.InvariantCulture, out var after))
                {
                    target.ArmStop(after);
                }
            }

            Environment.Exit(3);
        });
    }

    using var host = CopierApp.Build(settings, target);
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
    if (processor.CommittedTransactions != reported)
    {
        Console.WriteLine($"committed {processor.CommittedTransactions} {processor.CommittedRecords}"); // the shutdown's own commit
    }

    Console.WriteLine($"ended {processor.State}");
    return processor.State == ProcessorState.Stopped ? 0 : 1;
}
