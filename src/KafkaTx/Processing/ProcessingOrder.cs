namespace KafkaTx;

/// <summary>The order a processor keeps when it handles records concurrently (<see cref="TransactionalProcessorOptions.MaxConcurrency"/> above 1).</summary>
public enum ProcessingOrder
{
    /// <summary>Records with the same key one after another, in offset order; different keys concurrently. Records without a key are ordered by partition.</summary>
    Key = 0,

    /// <summary>Records of one partition one after another, in offset order; partitions concurrently.</summary>
    Partition,

    /// <summary>Any record at any time: the most concurrency, no order. Offsets still commit only over records handled.</summary>
    Unordered,
}
