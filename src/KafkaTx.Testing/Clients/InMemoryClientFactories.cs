using System.Runtime.CompilerServices;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// One <see cref="InMemoryKafkaClientFactory"/> per cluster in an application (a service provider is one "process"),
/// however many builders run in memory: after <see cref="InMemoryKafkaCluster.CrashClients"/>, all of the
/// application's clients are dead together.
/// </summary>
internal sealed class InMemoryClientFactories
{
    private readonly ConditionalWeakTable<InMemoryKafkaCluster, InMemoryKafkaClientFactory> _factories = [];

    public InMemoryKafkaClientFactory For(InMemoryKafkaCluster cluster) =>
        _factories.GetValue(cluster, static c => new InMemoryKafkaClientFactory(c));
}
