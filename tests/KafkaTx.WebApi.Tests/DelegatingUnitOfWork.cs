using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using WebApi;

namespace KafkaTx.WebApi.Tests;

/// <summary>The real unit of work, with ExecuteAsync replaceable: how the tests inject a failure or a pause into POST /orders.</summary>
public sealed class DelegatingUnitOfWork(ITransactionalUnitOfWork inner, Func<ITransactionalUnitOfWork, Func<ITransactionScope, CancellationToken, ValueTask>, CancellationToken, Task> execute)
    : ITransactionalUnitOfWork
{
    public TransactionState State => inner.State;

    public string TransactionalId => inner.TransactionalId;

    public Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default) =>
        execute(inner, work, cancellationToken);

    public async Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default)
    {
        TResult result = default!;
        await execute(inner, async (tx, ct) => result = await work(tx, ct), cancellationToken);
        return result;
    }

    public Task InitializeAsync(CancellationToken cancellationToken = default) => inner.InitializeAsync(cancellationToken);

    public void BeginTransaction() => inner.BeginTransaction();

    public Task CommitAsync(CancellationToken cancellationToken = default) => inner.CommitAsync(cancellationToken);

    public Task AbortAsync(CancellationToken cancellationToken = default) => inner.AbortAsync(cancellationToken);

    public Task ResetAsync(CancellationToken cancellationToken = default) => inner.ResetAsync(cancellationToken);

    public void Produce<TKey, TValue>(string topic, Message<TKey, TValue> message) => inner.Produce(topic, message);

    public void Produce<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message) => inner.Produce(topicPartition, message);

    public ValueTask ProduceAsync<TKey, TValue>(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken = default) =>
        inner.ProduceAsync(topic, message, cancellationToken);

    public ValueTask ProduceAsync<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message, CancellationToken cancellationToken = default) =>
        inner.ProduceAsync(topicPartition, message, cancellationToken);

    public Task SendOffsetsAsync(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken = default) =>
        inner.SendOffsetsAsync(offsets, groupMetadata, cancellationToken);

    /// <summary>The container disposes what it created: this decorator, which owns the real unit.</summary>
    public ValueTask DisposeAsync() => inner.DisposeAsync();

    public void Dispose() => inner.Dispose();
}

public static class UnitOfWorkDecoration
{
    /// <summary>Wraps the sample's "web" unit of work (the one POST /orders writes through) in a <see cref="DelegatingUnitOfWork"/>.</summary>
    public static void DecorateWebUnit(this IServiceCollection services, Func<ITransactionalUnitOfWork, Func<ITransactionScope, CancellationToken, ValueTask>, CancellationToken, Task> execute)
    {
        var original = services.Last(d => d.IsKeyedService && d.ServiceType == typeof(ITransactionalUnitOfWork) && Equals(d.ServiceKey, Producers.Web));
        services.Remove(original);
        services.AddKeyedSingleton<ITransactionalUnitOfWork>(Producers.Web, (sp, key) =>
            new DelegatingUnitOfWork((ITransactionalUnitOfWork)original.KeyedImplementationFactory!(sp, key), execute));
    }
}
