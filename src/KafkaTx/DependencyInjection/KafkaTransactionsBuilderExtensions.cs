using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using KafkaTx.Health;

namespace KafkaTx;

/// <summary>Further configuration of a producer registered with <c>AddKafkaTransactions</c>.</summary>
public static class KafkaTransactionsBuilderExtensions
{
    /// <summary>
    /// Registers a health check for this producer and its processor, named <c>kafkatx</c> (or <c>kafkatx-{name}</c>)
    /// and tagged <c>kafkatx</c>: Unhealthy when Fenced or Faulted, Degraded after repeated commit failures, repeated
    /// producer replacements, records waiting too long for a commit, no broker reached or no initialization for too
    /// long; the description and the data dictionary say why.
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="configure">Changes when the check reports Degraded; the options are named after the producer, so configuration can bind them too.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder AddHealthChecks(this IKafkaTransactionsBuilder builder, Action<KafkaTransactionsHealthCheckOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var name = builder.Name;

        // Named options, so that configuration can bind them (Configure<KafkaTransactionsHealthCheckOptions>(name, section))
        // and bad values stop the start-up instead of the first probe.
        var options = builder.Services.AddOptions<KafkaTransactionsHealthCheckOptions>(name).ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KafkaTransactionsHealthCheckOptions>, KafkaTransactionsHealthCheckOptionsValidator>());
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            name.Length == 0 ? "kafkatx" : "kafkatx-" + name,
            services => new KafkaTransactionsHealthCheck(
                name, services.GetRequiredService<IOptionsMonitor<KafkaTransactionsHealthCheckOptions>>().Get(name), services),
            failureStatus: null,
            tags: ["kafkatx"]));
        return builder;
    }

    /// <summary>
    /// Initializes this producer (InitTransactions) while the host starts, so that the first call pays nothing: the
    /// host's start waits for it, at most the options' <see cref="KafkaTransactionsInitializeOnStartOptions.Timeout"/>
    /// (10 s by default), initializing every producer that asks for it at once. One that cannot initialize in time
    /// (Kafka is down) is logged with the reason and the application starts anyway: its health check reports Degraded,
    /// and calls retry the initialization; set <see cref="KafkaTransactionsInitializeOnStartOptions.FailStartIfNotInitialized"/>
    /// to fail the start instead. A processor initializes its own producer when it starts and needs none of this.
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="configure">Sets the timeout and the failure policy; the options are named after the producer, so configuration can bind them too.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder InitializeOnStart(this IKafkaTransactionsBuilder builder, Action<KafkaTransactionsInitializeOnStartOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<KafkaTransactionsInitializeOnStartOptions>(builder.Name).ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KafkaTransactionsInitializeOnStartOptions>, KafkaTx.Hosting.InitializeOnStartOptionsValidator>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.Extensions.Hosting.IHostedService, KafkaTx.Hosting.ProducerInitializer>());
        builder.Services.AddSingleton(new KafkaTx.Hosting.InitializeOnStartRegistration(builder.Name));
        return builder;
    }

    /// <summary>
    /// Registers a pool of <paramref name="size"/> units of work for this producer, for more than one transaction in
    /// flight: <see cref="ITransactionalUnitOfWorkPool"/>, keyed by the producer's name (and unkeyed for the default
    /// producer). Slot n uses transactional.id <c>{transactional.id}-slot-{n}</c>.
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="size">How many transactions may be open at once: from 1 to 64. Each slot holds a producer (connections and librdkafka threads).</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is below 1 or above 64.</exception>
    public static IKafkaTransactionsBuilder AddUnitOfWorkPool(this IKafkaTransactionsBuilder builder, int size)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (size is < 1 or > MaxPoolSize)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"A unit of work pool has from 1 to {MaxPoolSize} slots; {size} was given. Each slot is a producer of its own: size the pool by the transactions that must be open at once, not by the number of callers (callers wait for an idle slot).");
        }

        var name = builder.Name;
        builder.Services.AddSingleton(new KafkaTx.DependencyInjection.UnitOfWorkPoolRegistration(name)); // checked at start-up against processors
        builder.Services.AddKeyedSingleton<ITransactionalUnitOfWorkPool>(name, (services, _) =>
        {
            var factory = services.GetRequiredService<KafkaTx.DependencyInjection.TransactionalUnitOfWorkFactory>();
            factory.RefuseIfOwned(name, "ITransactionalUnitOfWorkPool");
            return new KafkaTx.Pooling.TransactionalUnitOfWorkPool(name, size, factory);
        });
        if (name.Length == 0)
        {
            builder.Services.AddSingleton(services => services.GetRequiredKeyedService<ITransactionalUnitOfWorkPool>(name));
        }

        return builder;
    }

    private const int MaxPoolSize = 64;

    /// <summary>Changes the producer's options after they were bound (for example to set values computed at start-up).</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="configure">Changes the options.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder Configure(this IKafkaTransactionsBuilder builder, Action<KafkaTransactionsOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Configure(builder.Name, configure);
        return builder;
    }

    /// <summary>
    /// Registers the serializer this producer uses for keys and values of type <typeparamref name="T"/>, in every
    /// topic. string, byte[], Null, int, long, float and double need none.
    /// </summary>
    /// <typeparam name="T">The key or value type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="serializer">The serializer; it must be thread-safe.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder AddSerializer<T>(this IKafkaTransactionsBuilder builder, ISerializer<T> serializer)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(serializer);
        builder.Services.Configure<KafkaTransactionsOptions>(builder.Name, options => options.Serializers.Add(serializer));
        return builder;
    }

    /// <summary>
    /// Registers the deserializer a processor of this producer uses for input keys and values of type
    /// <typeparamref name="T"/>. string, byte[], Null, Ignore, int, long, float and double need none.
    /// </summary>
    /// <typeparam name="T">The key or value type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="deserializer">The deserializer; it must be thread-safe.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder AddDeserializer<T>(this IKafkaTransactionsBuilder builder, IDeserializer<T> deserializer)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(deserializer);
        builder.Services.Configure<TransactionalProcessorOptions>(builder.Name, options => options.Deserializers.Add(deserializer));
        return builder;
    }

    /// <summary>
    /// Registers an asynchronous serializer (for example Confluent's Schema Registry <c>AvroSerializer&lt;T&gt;</c> or
    /// <c>JsonSerializer&lt;T&gt;</c>) this producer uses for keys and values of type <typeparamref name="T"/>, in every
    /// topic, replacing any serializer registered for the type before. Write such records with
    /// <see cref="ITransactionScope.ProduceAsync{TKey, TValue}(string, Message{TKey, TValue}, CancellationToken)"/>: it
    /// awaits the serializer before the record enters the transaction; <c>Produce</c> refuses them rather than block a thread.
    /// </summary>
    /// <typeparam name="T">The key or value type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="serializer">The serializer; it must be thread-safe.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder AddSerializer<T>(this IKafkaTransactionsBuilder builder, IAsyncSerializer<T> serializer)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(serializer);
        builder.Services.Configure<KafkaTransactionsOptions>(builder.Name, options => options.Serializers.Add(serializer));
        return builder;
    }

    /// <summary>
    /// Registers an asynchronous deserializer (for example Confluent's Schema Registry <c>AvroDeserializer&lt;T&gt;</c>
    /// or <c>JsonDeserializer&lt;T&gt;</c>) a processor of this producer uses for input keys and values of type
    /// <typeparamref name="T"/>: the processor awaits it before the handler runs.
    /// </summary>
    /// <typeparam name="T">The key or value type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="deserializer">The deserializer; it must be thread-safe.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder AddDeserializer<T>(this IKafkaTransactionsBuilder builder, IAsyncDeserializer<T> deserializer)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(deserializer);
        builder.Services.Configure<TransactionalProcessorOptions>(builder.Name, options => options.Deserializers.Add(deserializer));
        return builder;
    }

    /// <summary>
    /// Replaces the application's factory of Kafka clients (for example with a fake in tests, or to decorate the
    /// clients): every KafkaTx producer uses it, except those whose builder chose a factory of its own (KafkaTx.Testing's
    /// <c>UseInMemoryKafka</c>, which applies to its builder alone, registers one keyed by the builder's name). On this
    /// builder it also replaces such a choice made before: the last call wins.
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="factory">The factory.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder UseClientFactory(this IKafkaTransactionsBuilder builder, IKafkaClientFactory factory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(factory);
        builder.Services.Replace(ServiceDescriptor.Singleton(factory));
        builder.Services.RemoveAllKeyed<IKafkaClientFactory>(builder.Name);
        return builder;
    }
}
