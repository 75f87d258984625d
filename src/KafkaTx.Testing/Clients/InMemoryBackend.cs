using Confluent.Kafka;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// The client factory of one builder that runs in memory: the application's in-memory factory, described for the
/// producer's start-up log, which names servers configured but not used. It runs the builder's set-up callback
/// (<c>UseInMemoryKafka(whenInMemory)</c>) once, before the first client it creates, so that topics a processor
/// subscribes to exist before its consumer does. becauseNoServers: chosen by UseInMemoryKafkaWhenNoBootstrapServers (no
/// servers resolved), not by UseInMemoryKafka; the log says which.
/// </summary>
internal sealed class InMemoryBackend(InMemoryKafkaClientFactory factory, string? ignoredBootstrapServers, InMemoryKafkaCluster cluster, Action<InMemoryKafkaCluster>? whenInMemory, string builderName, bool becauseNoServers) : IKafkaClientFactory
{
    private readonly Lock _setUpLock = new();
    private Action<InMemoryKafkaCluster>? _setUp = whenInMemory;

    public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler)
    {
        EnsureSetUp();
        return factory.CreateProducer(config, errorHandler, logHandler);
    }

    public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers)
    {
        EnsureSetUp();
        return factory.CreateConsumer(config, handlers);
    }

    public override string ToString() => becauseNoServers
        ? "the in-memory Kafka (KafkaTx.Testing), because no bootstrap servers are configured (BootstrapServers and KAFKATX_BOOTSTRAP_SERVERS unset or empty) and UseInMemoryKafkaWhenNoBootstrapServers() was called on this builder"
        : ignoredBootstrapServers is null
            ? "the in-memory Kafka (KafkaTx.Testing), because UseInMemoryKafka() was called on this builder"
            : $"the in-memory Kafka (KafkaTx.Testing), because UseInMemoryKafka() was called on this builder, so its BootstrapServers '{ignoredBootstrapServers}' are not used";

    /// <summary>Runs the set-up once; a set-up that throws fails this client and runs again before the next one.</summary>
    private void EnsureSetUp()
    {
        if (Volatile.Read(ref _setUp) is null)
        {
            return;
        }

        lock (_setUpLock)
        {
            var setUp = _setUp;
            if (setUp is null)
            {
                return; // ran meanwhile, or running on this thread (the set-up created a client itself)
            }

            _setUp = null;
            try
            {
                setUp(cluster);
            }
            catch (Exception e)
            {
                _setUp = setUp;
                var name = string.IsNullOrEmpty(builderName) ? "(default)" : builderName;
                throw new InvalidOperationException(
                    $"The in-memory set-up of producer '{name}' (the whenInMemory callback given to UseInMemoryKafka or UseInMemoryKafkaWhenNoBootstrapServers) threw {e.GetType().Name}: {e.Message} " +
                    "No client was created; fix the callback (CreateTopic of an existing topic must ask for the same partition count). It runs again before the next client.", e);
            }
        }
    }
}
