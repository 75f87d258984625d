using Confluent.Kafka;
using KafkaTx.Throughput.Backends;
using KafkaTx.Throughput.Reporting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Throughput.Modes;

/// <summary>(c) KafkaTx's processor copying the input topic to the output, batches as the workload says.</summary>
internal sealed class ProcessorCopy(KafkaTxCommitLatencies latencies, DeliveryTracking deliveryTracking) : ThroughputMode
{
    public override string Letter => "c";

    public override string Name => "KafkaTx processor (copy)";

    public override bool Copies => true;

    public override async Task<RunResult> RunAsync(ThroughputBackend backend, Workload workload, RunNames names, CancellationToken cancellationToken)
    {
        var progress = new CopyProgress(names.Output);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(progress);
        backend.Use(builder.Services.AddKafkaTransactions(KafkaTxOptions(backend, workload, names.TransactionalId, deliveryTracking)))
            .AddTransactionalProcessor<CopyHandler>(o =>
            {
                o.Topics.Add(names.Input);
                o.GroupId = names.GroupId;
                (o.MaxBatchSize, o.MaxBatchDuration) = workload.Batching;
                o.StopApplicationOnFailure = false;
            });
        using var host = builder.Build();
        var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        var commits = latencies.Restart();

        await host.StartAsync(cancellationToken);
        var startDeadline = DateTime.UtcNow + workload.Deadline + TimeSpan.FromSeconds(60); // a group join can take seconds
        while (processor.CommittedRecords < workload.Records && processor.State is not (ProcessorState.Stopped or ProcessorState.Fenced or ProcessorState.Faulted) && !cancellationToken.IsCancellationRequested
            && (progress.Meter.Started ? progress.Meter.Elapsed < workload.Deadline : DateTime.UtcNow < startDeadline))
        {
            await Task.Delay(1, cancellationToken);
        }

        var result = progress.Meter.Finish(Letter, processor.CommittedRecords, workload.RecordSize, [.. commits]);
        await host.StopAsync(CancellationToken.None);
        return processor.State is ProcessorState.Faulted or ProcessorState.Fenced
            ? throw new InvalidOperationException($"The processor ended {processor.State}.", processor.Failure)
            : result;
    }

    /// <summary>Where the copy goes, and the run's clock, started by the first record handled.</summary>
    internal sealed class CopyProgress(string output)
    {
        private int _started;

        public string Output { get; } = output;

        public RunMeter Meter { get; } = new();

        public void RecordHandled()
        {
            if (_started == 0 && Interlocked.Exchange(ref _started, 1) == 0)
            {
                Meter.Start();
            }
        }
    }

    internal sealed class CopyHandler(CopyProgress progress) : ITransactionalHandler<byte[], byte[]>
    {
        public ValueTask HandleAsync(ConsumeResult<byte[], byte[]> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            progress.RecordHandled();
            transaction.Produce(progress.Output, new Message<byte[], byte[]> { Key = record.Message.Key, Value = record.Message.Value });
            return ValueTask.CompletedTask;
        }
    }
}
