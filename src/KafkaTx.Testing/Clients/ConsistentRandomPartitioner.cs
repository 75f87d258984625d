namespace KafkaTx.Testing.Clients;

/// <summary>librdkafka's default partitioner (consistent_random): CRC32 of the key, spread for null keys.</summary>
internal sealed class ConsistentRandomPartitioner
{
    private int _nextPartition;

    public int Choose(byte[]? key, int partitionCount) =>
        key is null
            ? (int)((uint)Interlocked.Increment(ref _nextPartition) % (uint)partitionCount)
            : (int)(Crc32.Compute(key) % (uint)partitionCount);
}
