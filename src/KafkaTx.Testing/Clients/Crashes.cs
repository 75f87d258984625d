using Confluent.Kafka;

namespace KafkaTx.Testing.Clients;

/// <summary>The error every call of a crashed client fails with.</summary>
internal static class Crashes
{
    public static KafkaException Error() =>
        new(new Error(ErrorCode.Local_Fatal, "The client's process crashed (InMemoryKafkaCluster.CrashClients); it sends nothing more", true));
}
