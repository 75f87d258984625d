using Confluent.Kafka;
using KafkaTx.Throughput.Backends;
using KafkaTx.Throughput.Reporting;

namespace KafkaTx.Throughput.Modes;

/// <summary>
/// (d) Consume-transform-produce written by hand, done right: read_committed, the consumer's positions sent in the
/// transaction, and on an abort a rewind of every assigned partition to its committed offset.
/// </summary>
internal sealed class HandWrittenCopyLoop : ThroughputMode
{
    public override string Letter => "d";

    public override string Name => "hand-written consume-transform-produce";

    public override bool Copies => true;

    public override Task<RunResult> RunAsync(ThroughputBackend backend, Workload workload, RunNames names, CancellationToken cancellationToken)
    {
        using var consumer = backend.CreateConsumer(new ConsumerConfig
        {
            BootstrapServers = backend.BootstrapServers,
            GroupId = names.GroupId,
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
        });
        using var producer = backend.CreateProducer(RawProducerConfig(backend, workload, names.TransactionalId));
        producer.InitTransactions(TimeSpan.FromSeconds(30));
        consumer.Subscribe(names.Input);

        var meter = new RunMeter();
        var startDeadline = DateTime.UtcNow + workload.Deadline + TimeSpan.FromSeconds(60); // a group join can take seconds
        long committed = 0;
        var inTransaction = 0;
        long begun = 0;
        while (committed < workload.Records && !cancellationToken.IsCancellationRequested
            && (meter.Started ? meter.Elapsed < workload.Deadline : DateTime.UtcNow < startDeadline))
        {
            var record = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (record is not null)
            {
                if (!meter.Started)
                {
                    meter.Start();
                }

                if (inTransaction == 0)
                {
                    producer.BeginTransaction();
                    begun = System.Diagnostics.Stopwatch.GetTimestamp();
                }

                var copy = new Message<byte[]?, byte[]?> { Key = record.Message.Key, Value = record.Message.Value };
                producer.ProduceWaitingForRoom(new TopicPartition(names.Output, Partition.Any), copy, TimeSpan.FromMilliseconds(1));

                inTransaction++;
            }

            if (inTransaction > 0 && (workload.IsFull(inTransaction, begun) || committed + inTransaction >= workload.Records))
            {
                try
                {
                    var positions = consumer.Assignment.Select(tp => new TopicPartitionOffset(tp, consumer.Position(tp))).Where(p => p.Offset.Value >= 0).ToList();
                    producer.SendOffsetsToTransaction(positions, consumer.ConsumerGroupMetadata, TimeSpan.FromSeconds(30));
                    var commitStarted = System.Diagnostics.Stopwatch.GetTimestamp();
                    producer.CommitTransaction(TimeSpan.FromSeconds(60));
                    meter.Commit(commitStarted);
                    committed += inTransaction;
                }
                catch (KafkaException e) when (!e.Error.IsFatal)
                {
                    producer.AbortTransaction(TimeSpan.FromSeconds(30));
                    Rewind(consumer);
                }

                inTransaction = 0;
            }
        }

        return Task.FromResult(meter.Finish(Letter, committed, workload.RecordSize));
    }

    private static void Rewind(IConsumer<byte[]?, byte[]?> consumer)
    {
        foreach (var committed in consumer.Committed(consumer.Assignment, TimeSpan.FromSeconds(10)))
        {
            consumer.Seek(new TopicPartitionOffset(committed.TopicPartition, committed.Offset.Value >= 0 ? committed.Offset : Offset.Beginning));
        }
    }
}
