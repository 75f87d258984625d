using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Clients;

/// <summary>
/// The client factory of each producer: the one registered keyed by the producer's name (a builder's own choice, such
/// as KafkaTx.Testing's UseInMemoryKafka), else the application's <see cref="IKafkaClientFactory"/>.
/// </summary>
internal sealed class ClientFactories(IServiceProvider services)
{
    public IKafkaClientFactory For(string name) =>
        services.GetKeyedService<IKafkaClientFactory>(name) ?? services.GetRequiredService<IKafkaClientFactory>();

    /// <summary>
    /// What a producer's start-up log says it runs on: the brokers for Confluent.Kafka's clients; for another factory,
    /// its own description (its ToString, as KafkaTx.Testing's in-memory Kafka gives), else its type and the servers.
    /// </summary>
    public static string Describe(IKafkaClientFactory factory, string? bootstrapServers)
    {
        if (factory is ConfluentKafkaClientFactory)
        {
            return $"Kafka at bootstrap servers {bootstrapServers} (configured: BootstrapServers or KAFKATX_BOOTSTRAP_SERVERS)";
        }

        var description = factory.ToString();
        return description is null || description == factory.GetType().ToString()
            ? $"{factory.GetType().Name} (BootstrapServers {bootstrapServers})"
            : description;
    }
}
