using Confluent.Kafka;

namespace KafkaTx;

/// <summary>
/// What code running inside an open transaction may do: write records to any topics, with any key and value types,
/// and add consumer offsets. Everything done through a scope commits together or not at all.
/// </summary>
public interface ITransactionScope
{
    /// <summary>The transactional.id of the producer that owns the transaction.</summary>
    string TransactionalId { get; }

    /// <summary>
    /// Writes a record in the open transaction. Does not wait for the broker: a record Kafka refuses makes the
    /// commit fail, naming the topic-partition, and the transaction is aborted instead of committed.
    /// </summary>
    /// <typeparam name="TKey">The key type: <see cref="string"/>, <c>byte[]</c>, <see cref="Null"/>,
    /// <see cref="int"/>, <see cref="long"/>, <see cref="float"/>, <see cref="double"/>, or a type with a registered serializer.</typeparam>
    /// <typeparam name="TValue">The value type, with the same rules as the key type.</typeparam>
    /// <param name="topic">The topic to write to. Must not be null or empty.</param>
    /// <param name="message">The record.</param>
    /// <exception cref="ArgumentException">The topic is null or empty.</exception>
    /// <exception cref="InvalidOperationException">No transaction is open, or no serializer is registered for a type, or
    /// the type's serializer is asynchronous (write it with ProduceAsync: Produce never blocks a thread on it).</exception>
    /// <exception cref="KafkaTransactionException">The client refused the record at once (for example it is larger than message.max.bytes), or the unit was fenced or faulted (Kind Fenced or Fatal).</exception>
    void Produce<TKey, TValue>(string topic, Message<TKey, TValue> message);

    /// <summary>Writes a record to a given partition in the open transaction. See <see cref="Produce{TKey, TValue}(string, Message{TKey, TValue})"/>.</summary>
    /// <typeparam name="TKey">The key type.</typeparam>
    /// <typeparam name="TValue">The value type.</typeparam>
    /// <param name="topicPartition">The topic and partition to write to.</param>
    /// <param name="message">The record.</param>
    void Produce<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message);

    /// <summary>
    /// Writes a record in the open transaction, awaiting its serializers first: the way to write types whose serializer
    /// is asynchronous (<see cref="IAsyncSerializer{T}"/>, such as Confluent's Schema Registry serdes, which may call
    /// the registry). The key and value are serialized before the record enters the transaction, then written as
    /// <see cref="Produce{TKey, TValue}(string, Message{TKey, TValue})"/> does; no thread is blocked. With synchronous
    /// serializers it completes at once and allocates nothing more than Produce.
    /// </summary>
    /// <typeparam name="TKey">The key type: as for Produce, or a type with a registered asynchronous serializer.</typeparam>
    /// <typeparam name="TValue">The value type, with the same rules as the key type.</typeparam>
    /// <param name="topic">The topic to write to. Must not be null or empty.</param>
    /// <param name="message">The record.</param>
    /// <param name="cancellationToken">Cancels waiting for the serializers; the record is then not written.</param>
    /// <returns>A task that completes when the record is in the transaction (not yet acknowledged by the broker).</returns>
    /// <exception cref="ArgumentException">The topic is null or empty.</exception>
    /// <exception cref="InvalidOperationException">No transaction is open (checked again after the serializers: the
    /// record is refused if its transaction ended meanwhile), or no serializer is registered for a type.</exception>
    /// <exception cref="KafkaTransactionException">As for Produce; also Kind <see cref="TransactionErrorKind.Retriable"/>
    /// when a serializer failed because the schema registry could not be reached or failed (a timeout, a 5xx or 429
    /// answer): the transaction should be aborted and run again (ExecuteAsync does so per its retry options).</exception>
    ValueTask ProduceAsync<TKey, TValue>(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken = default);

    /// <summary>Writes a record to a given partition in the open transaction, awaiting its serializers first. See <see cref="ProduceAsync{TKey, TValue}(string, Message{TKey, TValue}, CancellationToken)"/>.</summary>
    /// <typeparam name="TKey">The key type.</typeparam>
    /// <typeparam name="TValue">The value type.</typeparam>
    /// <param name="topicPartition">The topic and partition to write to.</param>
    /// <param name="message">The record.</param>
    /// <param name="cancellationToken">Cancels waiting for the serializers; the record is then not written.</param>
    /// <returns>A task that completes when the record is in the transaction.</returns>
    ValueTask ProduceAsync<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message, CancellationToken cancellationToken = default);

    /// <summary>
    /// Adds consumer offsets to the open transaction, so that the consumer's progress commits exactly when the
    /// records written from it commit (consume-transform-produce). Pass the consumer's positions, and group
    /// metadata read from the consumer now, not cached across a rebalance.
    /// </summary>
    /// <param name="offsets">The offsets to commit: for each partition, the offset of the next record to read.</param>
    /// <param name="groupMetadata">The consumer's current <see cref="IConsumer{TKey, TValue}.ConsumerGroupMetadata"/>.</param>
    /// <param name="cancellationToken">Cancels waiting; the transaction then stays open and should be aborted.</param>
    /// <returns>A task that completes when the offsets are part of the transaction.</returns>
    /// <exception cref="KafkaTransactionException">Kafka refused the offsets; <see cref="KafkaTransactionException.Kind"/> says what to do.</exception>
    Task SendOffsetsAsync(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken = default);
}
