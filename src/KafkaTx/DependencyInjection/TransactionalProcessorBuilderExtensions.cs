using KafkaTx.DependencyInjection;
using KafkaTx.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaTx;

/// <summary>Registers exactly-once consume-transform-produce processors.</summary>
public static class TransactionalProcessorBuilderExtensions
{
    /// <summary>
    /// Runs <typeparamref name="THandler"/> as a hosted consume-transform-produce processor: it consumes the options'
    /// topics with read_committed, hands the records to the handler (one record a call to an
    /// <see cref="ITransactionalHandler{TKey, TValue}"/>, a transaction's records in one call to an
    /// <see cref="ITransactionalBatchHandler{TKey, TValue}"/>), and commits the handler's output together with the
    /// consumer's progress. The processor owns this builder's producer (and its transactional.id): resolving this builder's
    /// <see cref="ITransactionalUnitOfWork"/> or pool throws, and a pool or InitializeOnStart on this builder fails the
    /// start; register a separate producer for other writers. The handler's key and value types need a deserializer
    /// (<c>AddDeserializer</c>; string, byte[], Null, Ignore, int, long, float and double have one), checked at start-up.
    /// Resolve its status as a keyed <see cref="ITransactionalProcessor"/>.
    /// </summary>
    /// <typeparam name="THandler">
    /// A class implementing either <see cref="ITransactionalHandler{TKey, TValue}"/> or
    /// <see cref="ITransactionalBatchHandler{TKey, TValue}"/>, once; resolved per transaction from a DI scope. A batch
    /// handler takes <see cref="TransactionalProcessorOptions.MaxConcurrency"/> 1 (checked at start-up).
    /// </typeparam>
    /// <param name="builder">The producer's builder.</param>
    /// <param name="configure">Sets the processor's options: at least the topics and the group.</param>
    /// <returns>The same builder.</returns>
    public static IKafkaTransactionsBuilder AddTransactionalProcessor<THandler>(this IKafkaTransactionsBuilder builder, Action<TransactionalProcessorOptions> configure)
        where THandler : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);

        var handlerInterfaces = typeof(THandler).GetInterfaces()
            .Where(i => i.IsGenericType && (i.GetGenericTypeDefinition() == typeof(ITransactionalHandler<,>) || i.GetGenericTypeDefinition() == typeof(ITransactionalBatchHandler<,>)))
            .ToList();
        if (handlerInterfaces.Count != 1)
        {
            throw new ArgumentException(
                $"{typeof(THandler).FullName} must implement one of ITransactionalBatchHandler<TKey, TValue> or ITransactionalHandler<TKey, TValue> exactly once (it implements them {handlerInterfaces.Count} times).", nameof(THandler));
        }

        var batchHandler = handlerInterfaces[0].GetGenericTypeDefinition() == typeof(ITransactionalBatchHandler<,>);

        var name = builder.Name;
        var services = builder.Services;
        if (services.Any(d => d.IsKeyedService && d.ServiceType == typeof(ITransactionalProcessor) && Equals(d.ServiceKey, name)))
        {
            throw new InvalidOperationException(
                $"The producer '{(name.Length == 0 ? "(default)" : name)}' already has a processor. A processor owns its producer and transactional.id: register another producer for another processor.");
        }

        services.Configure(name, configure);
        var processorOptions = services.AddOptions<TransactionalProcessorOptions>(name).ValidateOnStart();
        if (batchHandler)
        {
            // One call holds the whole transaction: there is nothing to run concurrently with it.
            processorOptions.Validate(
                o => o.MaxConcurrency == 1,
                $"{(name.Length == 0 ? "Transactional processor" : $"Transactional processor '{name}'")}: {typeof(THandler).Name} is a batch handler (ITransactionalBatchHandler), which gets all the records of a transaction in one call, one transaction at a time; MaxConcurrency must be 1. To handle records concurrently, implement ITransactionalHandler instead.");
        }

        var types = handlerInterfaces[0].GetGenericArguments();
        RequireDeserializer(processorOptions, name, typeof(THandler), types[0], "keys");
        RequireDeserializer(processorOptions, name, typeof(THandler), types[1], "values");

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TransactionalProcessorOptions>, TransactionalProcessorOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TransactionalProcessorOptions>, TransactionalProcessorOwnershipValidator>());
        services.AddSingleton(new ProcessorRegistration(name, typeof(THandler)));
        services.AddKeyedSingleton(name, (sp, _) => sp.GetRequiredService<TransactionalUnitOfWorkFactory>().CreateForProcessor(name)); // internal: the processor's alone
        services.TryAddScoped<THandler>();
        services.TryAddSingleton(sp => new ApplicationStopper(sp.GetService<IHostApplicationLifetime>()));

        var processorType = typeof(TransactionalProcessor<,>).MakeGenericType(types);
        services.AddKeyedSingleton<ITransactionalProcessor>(name, (sp, _) =>
            (ITransactionalProcessor)ActivatorUtilities.CreateInstance(sp, processorType, name, typeof(THandler), sp));
        services.AddSingleton<IHostedService>(sp => (IHostedService)sp.GetRequiredKeyedService<ITransactionalProcessor>(name));
        return builder;
    }

    // Checked at start-up, before anything is consumed: otherwise every record would fail to deserialize, be retried and dead-lettered.
    private static void RequireDeserializer(OptionsBuilder<TransactionalProcessorOptions> options, string name, Type handler, Type type, string part) =>
        options.Validate(
            o => o.Deserializers.Has(type),
            $"{(name.Length == 0 ? "Transactional processor" : $"Transactional processor '{name}'")}: its handler {handler.Name} takes {part} of type {type.FullName}, which has no deserializer. " +
            $"Register one on the processor's builder: .AddDeserializer(new KafkaJsonSerde<{type.Name}>()) for JSON (System.Text.Json), or .AddDeserializer<{type.Name}>(...) with your own IDeserializer<{type.Name}>. " +
            "string, byte[], Null, Ignore, int, long, float and double need none.");
}
