using System.Text;
using Confluent.Kafka;
using KafkaTx.Reliability.Copying;
using KafkaTx.Reliability.Verification;
using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Reliability.Crash;

/// <summary>
/// The in-memory Kafka inside this process; each copier incarnation is an application of its own over it. A kill is
/// KafkaTx.Testing's crash: the incarnation's clients go dead at once, without aborting or leaving the group, and stay
/// dead, as a killed process's would.
/// </summary>
internal sealed class InMemoryCopierBackend : ICopierBackend
{
    private readonly Dictionary<TopicPartition, long> _read = [];

    public InMemoryCopierBackend(TimeProvider? time = null) => Cluster = new InMemoryKafkaCluster(timeProvider: time);

    public InMemoryKafkaCluster Cluster { get; }

    /// <summary>The copiers' log level: none by default, since the crashed ones only log that they are dead.</summary>
    public LogLevel CopierLogLevel { get; init; } = LogLevel.None;

    public string Description => "in-memory Kafka (KafkaTx.Testing) inside this process";

    public Task CreateTopicsAsync(int partitions, params string[] topics)
    {
        foreach (var topic in topics)
        {
            Cluster.CreateTopic(topic, partitions);
        }

        return Task.CompletedTask;
    }

    public void Seed(string topic, int partitions, long first, int count, int keys = 1)
    {
        using var producer = Cluster.CreateProducer(new ProducerConfig());
        for (var p = 0; p < partitions; p++)
        {
            var partition = new TopicPartition(topic, p);
            var partitionKey = Encoding.UTF8.GetBytes(OutputVerifier.Key(p));
            for (var sequence = first; sequence < first + count; sequence++)
            {
                var key = keys == 1 ? partitionKey : Encoding.UTF8.GetBytes(OutputVerifier.Key(p, sequence, keys));
                producer.Produce(partition, new Message<byte[]?, byte[]?> { Key = key, Value = Encoding.UTF8.GetBytes(OutputVerifier.Value(p, sequence)) });
            }
        }
    }

    public async Task<ICopier> StartCopierAsync(CopierSettings settings)
    {
        var target = new CopyTarget(settings);
        var host = CopierApp.Build(settings, target, Cluster, CopierLogLevel);
        var copier = new InMemoryCopier(host, target);
        await host.StartAsync();
        return copier;
    }

    public void ReadNewOutput(string topic, OutputVerifier verifier)
    {
        for (var p = 0; p < Cluster.PartitionCount(topic); p++)
        {
            var partition = new TopicPartition(topic, p);
            var from = _read.GetValueOrDefault(partition);
            var records = Cluster.ReadPartition(partition);
            foreach (var record in records)
            {
                if (record.Offset >= from)
                {
                    verifier.Observe(record.ValueText);
                }
            }

            // Past the last stable offset nothing is final yet; below it, markers and aborted records are skipped for good.
            _read[partition] = Cluster.LastStableOffset(partition);
        }
    }

    public IReadOnlyDictionary<int, (long Committed, long End)> Progress(string input, string group) =>
        Enumerable.Range(0, Cluster.PartitionCount(input)).ToDictionary(
            p => p,
            p => (Cluster.CommittedOffset(group, new TopicPartition(input, p)) ?? 0, Cluster.HighWatermark(new TopicPartition(input, p))));

    public void DeleteBefore(string topic, IReadOnlyDictionary<int, long> offsets)
    {
        foreach (var (partition, offset) in offsets)
        {
            Cluster.DeleteRecordsBefore(new TopicPartition(topic, partition), offset);
        }
    }

    public IReadOnlyDictionary<int, long> OutputPositions(string topic) =>
        _read.Where(r => r.Key.Topic == topic).ToDictionary(r => r.Key.Partition.Value, r => r.Value);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private sealed class InMemoryCopier : ICopier
    {
        private readonly IHost _host;
        private readonly CopyTarget _target;
        private readonly ITransactionalProcessor _processor;
        private readonly TaskCompletionSource _stopping = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private DateTime? _firstCommitAt;
        private bool _killed;

        public InMemoryCopier(IHost host, CopyTarget target)
        {
            _host = host;
            _target = target;
            _processor = CopierApp.Processor(host);
            host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.Register(() => _stopping.TrySetResult());
            StartedAt = DateTime.UtcNow;
        }

        public long CommittedRecords => _processor.CommittedRecords;

        public long HandledRecords => _target.Handled;

        public DateTime StartedAt { get; }

        public bool HasStopped => _stopping.Task.IsCompleted;

        public DateTime? FirstCommitAt
        {
            get
            {
                if (_firstCommitAt is null && _processor.CommittedTransactions > 0)
                {
                    _firstCommitAt = DateTime.UtcNow; // polled often by the harness: precise to its poll interval
                }

                return _firstCommitAt;
            }
        }

        public ArmedAwaitEnd? ArmedAwait => _target.ArmedAwait;

        public void ArmStop(long afterRecords) => _target.ArmStop(afterRecords);

        public Task<string> WaitForArmedCallAsync(TimeSpan deadline) => _target.AwaitingStop.WaitAsync(deadline);

        public Task KillAsync()
        {
            // Only one incarnation runs when the harness kills: the crash takes every open client of the cluster.
            _killed = true;
            _host.Services.GetRequiredService<InMemoryKafkaCluster>().CrashClients();
            _target.Resume();
            return Task.CompletedTask;
        }

        public void Pause() => _target.PauseAfter(5); // a few records into the transaction

        public void Resume() => _target.Resume();

        public async Task<CopierEnd> WaitForEndAsync(TimeSpan deadline)
        {
            // A processor that can no longer work stops its application with exit code 1 (StopApplicationOnFailure).
            // Read from the processor's own end, not from Environment.ExitCode: that is the whole process's, which
            // other copiers and tests running in the same process set too.
            await _stopping.Task.WaitAsync(deadline);
            Environment.ExitCode = 0; // the harness's own exit code is its verdict's
            var state = _processor.State.ToString();
            return new CopierEnd(state, state is "Fenced" or "Faulted" ? 1 : 0);
        }

        public async Task StopAsync()
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _host.StopAsync(timeout.Token);
        }

        public async ValueTask DisposeAsync()
        {
            if (_killed)
            {
                // Its clients are dead: its processor has stopped, or stops at its next call, and any exit code it
                // set belongs to a process that no longer exists.
                await _stopping.Task.WaitAsync(TimeSpan.FromSeconds(30));
                Environment.ExitCode = 0;
            }

            await StopAsync();
            _host.Dispose();
        }
    }
}
