using Confluent.Kafka;

namespace KafkaTx.IntegrationTests.Support;

/// <summary>
/// A consumer group's committed offsets, read the way every broker from 2.4 up allows. Offsets sent in a transaction
/// reach the group when its commit marker reaches the group coordinator, a little after CommitTransaction returns.
/// From Kafka 2.5 (KIP-447) a read_committed consumer's fetch waits for them; before, the fetch answers at once with
/// the offsets committed earlier (-1001, unset, right after a group's first commit). So a test polls, with a
/// deadline, until the offsets it waits for show, and then asserts on exactly what the group holds.
/// </summary>
internal static class GroupOffsets
{
    public static Dictionary<TopicPartition, Offset> Read<TKey, TValue>(IConsumer<TKey, TValue> consumer, IEnumerable<TopicPartition> partitions) =>
        consumer.Committed(partitions, TimeSpan.FromSeconds(10)).ToDictionary(o => o.TopicPartition, o => o.Offset);

    /// <summary>
    /// Polls until the group holds an offset, any offset, for <paramref name="awaited"/>, then returns what it holds
    /// for every partition: the caller asserts the exact values, so a wrong offset fails as itself, not as a timeout.
    /// </summary>
    public static Task<Dictionary<TopicPartition, Offset>> OnceShownAsync<TKey, TValue>(IConsumer<TKey, TValue> consumer, TopicPartition[] partitions, TopicPartition awaited, TimeSpan deadline, string what) =>
        Eventually.Until(() => Read(consumer, partitions), offsets => offsets[awaited] != Offset.Unset, deadline, what, Describe);

    public static string Describe(Dictionary<TopicPartition, Offset> offsets) =>
        string.Join(", ", offsets.Select(o => $"{o.Key.Topic} [{o.Key.Partition.Value}]: {o.Value}"));
}
