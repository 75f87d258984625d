using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>The consumer configuration exactly-once processing needs, built from validated options.</summary>
internal static class ProcessorConsumerConfig
{
    /// <summary>Producer settings that describe the connection, not the producer, and so apply to the consumer too.</summary>
    private static readonly string[] SharedPrefixes = ["security.protocol", "sasl.", "ssl.", "client.dns.lookup", "socket.", "broker.address.family"];

    public static ConsumerConfig Build(TransactionalProcessorOptions options, KafkaTransactionsOptions producer)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in producer.ClientSettings)
        {
            if (SharedPrefixes.Any(prefix => key.StartsWith(prefix, StringComparison.Ordinal)))
            {
                settings[key] = value;
            }
        }

        foreach (var (key, value) in options.ConsumerSettings)
        {
            settings[key] = value;
        }

        var config = new ConsumerConfig(settings)
        {
            BootstrapServers = producer.BootstrapServers,
            GroupId = options.GroupId,
            IsolationLevel = IsolationLevel.ReadCommitted, // never process records of aborted or open transactions
            EnableAutoCommit = false,                      // progress is committed only inside transactions
            EnableAutoOffsetStore = false,
            AutoOffsetReset = options.AutoOffsetReset,
            EnablePartitionEof = false,
        };

        // Named explicitly either way, so that the processor keeps its protocol whatever librdkafka's default becomes.
        // The consumer protocol (KIP-848) has no client-side assignor: librdkafka refuses the consumer if one is set.
        config.GroupProtocol = options.GroupProtocol;
        if (options.GroupProtocol == GroupProtocol.Classic)
        {
            config.PartitionAssignmentStrategy = options.AssignmentStrategy;
        }

        if (options.StaticMembership && !settings.ContainsKey("group.instance.id"))
        {
            // The transactional.id is stable per instance and unique across instances: exactly what a static member needs.
            config.GroupInstanceId = producer.ResolveTransactionalId();
        }

        return config;
    }
}
