using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Tests.Serialization;

/// <summary>The services of a unit of work on the in-memory Kafka whose <see cref="Text"/> records go through a <see cref="ScriptedAsyncSerde"/>.</summary>
internal static class ScriptedSerdeUnit
{
    public static ServiceProvider Services(InMemoryKafkaCluster kafka, ScriptedAsyncSerde serde, int maxAttempts = 3, TimeSpan? transactionTimeout = null, Action<IKafkaTransactionsBuilder>? serializers = null)
    {
        var services = new ServiceCollection();
        var builder = services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "in-memory";
            o.TransactionalIdPrefix = "orders-api";
            o.InstanceId = "0";
            o.Retry.MaxAttempts = maxAttempts;
            o.Retry.BaseDelay = TimeSpan.FromMilliseconds(1);
            if (transactionTimeout is { } timeout)
            {
                o.TransactionTimeout = timeout;
            }
        }).UseInMemoryKafka(kafka).AddSerializer<Text>(serde);
        serializers?.Invoke(builder);
        return services.BuildServiceProvider();
    }
}
