namespace KafkaTx;

/// <summary>
/// Which records of a transaction get a delivery report. Failures are never silent whatever the choice: Kafka refuses
/// to commit a transaction with a refused record, and the commit's error is classified. What the reports add is
/// detail: which partitions refused which records, and an answer without waiting for the commit.
/// </summary>
public enum DeliveryTracking
{
    /// <summary>
    /// Every record. A transaction that cannot commit names every refused record's partition and error
    /// in <see cref="KafkaTransactionException.FailedDeliveries"/>, and a commit that fails fatally after a refused
    /// record is known to have aborted rather than having an unknown outcome. Costs about 1.2 us and 300 bytes per
    /// record in Confluent.Kafka (a report object and a handle per record), which shows where producing, not
    /// committing, is the bottleneck (about 0.8 of a raw loop's throughput there).
    /// </summary>
    EveryRecord = 0,

    /// <summary>
    /// The first record written to each topic in each transaction (the default). Errors of a whole topic (unknown,
    /// not authorized) are still reported at once, with the topic named, and classified Rejected. A refusal of a later
    /// record fails the commit and is classified from the commit's own error (Rejected where that error is a
    /// rejection; otherwise Abortable, and ExecuteAsync may run the work again before giving up);
    /// <see cref="KafkaTransactionException.FailedDeliveries"/> lists only the tracked records. Costs nothing
    /// measurable per record: the throughput of a raw Confluent.Kafka loop.
    /// </summary>
    FirstRecordPerTopic = 1,

    /// <summary>
    /// No delivery reports at all (Confluent.Kafka's <c>dotnet.producer.enable.delivery.reports=false</c>). A refused
    /// record fails the commit, classified from the commit's error; <see cref="KafkaTransactionException.FailedDeliveries"/>
    /// is empty, and a topic that does not exist is found only at the commit (and the work may run once more first).
    /// </summary>
    None = 2,
}
