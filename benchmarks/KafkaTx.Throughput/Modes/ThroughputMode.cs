using KafkaTx.Throughput.Backends;
using KafkaTx.Throughput.Reporting;

namespace KafkaTx.Throughput.Modes;

/// <summary>The names one run uses: fresh for every run, so that runs never see each other's records or offsets.</summary>
internal sealed record RunNames(string Input, string Output, string GroupId, string TransactionalId);

/// <summary>One contender: writes (or copies) the workload's records and reports what it measured.</summary>
internal abstract class ThroughputMode
{
    /// <summary>The letter the issue and the docs use: a to e.</summary>
    public abstract string Letter { get; }

    public abstract string Name { get; }

    /// <summary>Copies records from an input topic instead of writing new ones.</summary>
    public virtual bool Copies => false;

    public abstract Task<RunResult> RunAsync(ThroughputBackend backend, Workload workload, RunNames names, CancellationToken cancellationToken);

    protected static void Produce(Confluent.Kafka.IProducer<byte[]?, byte[]?> producer, string topic, Workload workload, Confluent.Kafka.Message<byte[]?, byte[]?> message, long index)
    {
        message.Key = workload.Keys[index % workload.Keys.Length];
        while (true)
        {
            try
            {
                producer.Produce(topic, message);
                return;
            }
            catch (Confluent.Kafka.ProduceException<byte[]?, byte[]?> e) when (e.Error.Code == Confluent.Kafka.ErrorCode.Local_QueueFull)
            {
                producer.Poll(TimeSpan.FromMilliseconds(1)); // as KafkaTx does: wait for room rather than fail
            }
        }
    }
}
