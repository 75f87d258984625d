using Confluent.Kafka;
using KafkaTx.Serialization;

namespace KafkaTx.Processing;

/// <summary>
/// Turns a consumed record into the handler's types with the application's deserializers (user code, run with no
/// synchronization context). A byte[] processor gets the consumed record itself. Asynchronous deserializers (Schema
/// Registry serdes) are awaited; with synchronous ones <see cref="DeserializeAsync"/> completes at once.
/// </summary>
/// <param name="deserializers">The application's deserializers.</param>
/// <param name="transactionTimeout">The producer's TransactionTimeout: an asynchronous deserializer is not awaited past
/// what the open transaction has left of it (less its commit margin), or the broker would abort the transaction and
/// fence the producer while the processor waited for a slow schema registry.</param>
/// <param name="time">The processor's clock.</param>
internal sealed class RecordDeserializer<TKey, TValue>(DeserializerRegistry deserializers, TimeSpan transactionTimeout, TimeProvider time)
{
    private object? _key;     // looked up at the first record, not at every one
    private object? _value;

    /// <summary>The record in the handler's types: at once (synchronous deserializers), or after awaiting the asynchronous ones.</summary>
    /// <param name="result">The consumed record.</param>
    /// <param name="transactionStartedAt">When the open transaction began (a timestamp of the processor's clock), which
    /// bounds the wait for an asynchronous deserializer; null when none is open (no bound).</param>
    /// <param name="cancellationToken">Ends the wait for an asynchronous deserializer (OperationCanceledException).</param>
    /// <exception cref="ConsumeException">A deserializer failed (see <see cref="DeserializerRegistry.Deserialize{T}"/>); thrown at once by a synchronous one.</exception>
    /// <exception cref="KafkaTransactionException">The schema registry could not be reached, failed, or did not answer in time (Kind Retriable).</exception>
    public ValueTask<ConsumeResult<TKey, TValue>> DeserializeAsync(ConsumeResult<byte[]?, byte[]?> result, long? transactionStartedAt, CancellationToken cancellationToken)
    {
        var headers = result.Message.Headers;
        var keyContext = new SerializationContext(MessageComponentType.Key, result.Topic, headers);
        var valueContext = new SerializationContext(MessageComponentType.Value, result.Topic, headers);
        _key ??= deserializers.Resolve<TKey>(keyContext);
        _value ??= deserializers.Resolve<TValue>(valueContext);
        if (_key is IDeserializer<TKey> key && _value is IDeserializer<TValue> value)
        {
            return new ValueTask<ConsumeResult<TKey, TValue>>(Deserialize(result, key, value, keyContext, valueContext));
        }

        using (ProcessorThread.WithoutContext())
        {
            return new ValueTask<ConsumeResult<TKey, TValue>>(AwaitAsync(result, keyContext, valueContext, transactionStartedAt, cancellationToken));
        }
    }

    /// <summary>Deserializes the record, then calls the handler: a concurrent call's start when a deserializer is asynchronous.</summary>
    public static async ValueTask ThenHandleAsync(ValueTask<ConsumeResult<TKey, TValue>> record, ITransactionalHandler<TKey, TValue> handler, ITransactionScope scope, CancellationToken cancellationToken) =>
        await handler.HandleAsync(await record.ConfigureAwait(false), scope, cancellationToken).ConfigureAwait(false);

    private static ConsumeResult<TKey, TValue> Deserialize(ConsumeResult<byte[]?, byte[]?> result, IDeserializer<TKey> key, IDeserializer<TValue> value, in SerializationContext keyContext, in SerializationContext valueContext)
    {
        using (ProcessorThread.WithoutContext())
        {
            if (result is ConsumeResult<TKey, TValue> same
                && ReferenceEquals(key, Deserializers.ByteArray) && ReferenceEquals(value, Deserializers.ByteArray))
            {
                return same; // it was built for this record alone
            }

            return Typed(result, DeserializerRegistry.Deserialize(key, result, keyContext), DeserializerRegistry.Deserialize(value, result, valueContext));
        }
    }

    private async Task<ConsumeResult<TKey, TValue>> AwaitAsync(ConsumeResult<byte[]?, byte[]?> result, SerializationContext keyContext, SerializationContext valueContext, long? transactionStartedAt, CancellationToken cancellationToken)
    {
        var key = _key is IDeserializer<TKey> syncKey
            ? DeserializerRegistry.Deserialize(syncKey, result, keyContext)
            : await DeserializerRegistry.DeserializeAsync((IAsyncDeserializer<TKey>)_key!, result, keyContext, TimeLeft(transactionStartedAt), time, cancellationToken).ConfigureAwait(false);
        var value = _value is IDeserializer<TValue> syncValue
            ? DeserializerRegistry.Deserialize(syncValue, result, valueContext)
            : await DeserializerRegistry.DeserializeAsync((IAsyncDeserializer<TValue>)_value!, result, valueContext, TimeLeft(transactionStartedAt), time, cancellationToken).ConfigureAwait(false);
        return Typed(result, key, value);
    }

    /// <summary>What the open transaction has left before the unit would refuse to commit it (never below zero); no bound without one.</summary>
    private TimeSpan TimeLeft(long? transactionStartedAt) => transactionStartedAt is { } startedAt
        ? UnitOfWork.OpenTransaction.TimeLeftBeforeCommitMargin(transactionTimeout, time.GetElapsedTime(startedAt))
        : Timeout.InfiniteTimeSpan;

    private static ConsumeResult<TKey, TValue> Typed(ConsumeResult<byte[]?, byte[]?> result, TKey key, TValue value) => new()
    {
        TopicPartitionOffset = result.TopicPartitionOffset,
        Message = new Message<TKey, TValue>
        {
            Key = key,
            Value = value,
            Headers = result.Message.Headers,
            Timestamp = result.Message.Timestamp,
        },
        LeaderEpoch = result.LeaderEpoch,
    };
}
