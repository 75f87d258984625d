using Confluent.Kafka;
using KafkaTx.Serialization;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// The calls that write into the open transaction: Produce (the hot path, which allocates nothing of its own) and
/// SendOffsets, with what their failures do to the transaction. A fatal error marks the producer broken (the abort
/// replaces it), fencing ends the unit. The caller has checked that a transaction is open.
/// </summary>
internal sealed class TransactionWrites(UnitParts unit, TransactionOrchestrator orchestrator)
{
    /// <summary>The hot path: serializes and produces a record of the open transaction, allocating nothing of its own.</summary>
    public void Produce<TKey, TValue>(string topic, TopicPartition? topicPartition, Message<TKey, TValue> message)
    {
        ThrowIfBroken(nameof(ITransactionScope.Produce));
        var headers = unit.Telemetry.WithTraceContext(message.Headers);
        var serializers = unit.Options.Serializers;
        var key = serializers.Serialize(message.Key, new SerializationContext(MessageComponentType.Key, topic, headers));
        var value = serializers.Serialize(message.Value, new SerializationContext(MessageComponentType.Value, topic, headers));
        ProduceSerialized(topic, topicPartition, key, value, headers, message.Timestamp);
    }

    /// <summary>
    /// Produce with asynchronous serializers: serialized (awaited) first, then written as Produce writes, if the
    /// transaction it began in is still open. With synchronous serializers, Produce itself, completed at once.
    /// </summary>
    public ValueTask ProduceAsync<TKey, TValue>(string topic, TopicPartition? topicPartition, Message<TKey, TValue> message, CancellationToken cancellationToken)
    {
        if (SerializesSynchronously<TKey, TValue>())
        {
            Produce(topic, topicPartition, message);
            return default;
        }

        return SerializeThenProduceAsync(topic, topicPartition, message, cancellationToken);
    }

    public bool SerializesSynchronously<TKey, TValue>() =>
        unit.Options.Serializers.IsSynchronous<TKey>() && unit.Options.Serializers.IsSynchronous<TValue>();

    /// <summary>Serializes a record for the open transaction; a registry that cannot be reached fails it as Retriable.</summary>
    public async ValueTask<SerializedRecord> SerializeAsync<TKey, TValue>(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken)
    {
        ThrowIfBroken(nameof(ITransactionScope.ProduceAsync));
        var transaction = unit.Transaction.Number;
        var headers = unit.Telemetry.WithTraceContext(message.Headers);
        var serializers = unit.Options.Serializers;
        var component = MessageComponentType.Key;
        try
        {
            var key = await serializers.SerializeAsync(message.Key, new SerializationContext(component, topic, headers)).ConfigureAwait(false);
            component = MessageComponentType.Value;
            var value = await serializers.SerializeAsync(message.Value, new SerializationContext(component, topic, headers)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            return new SerializedRecord(key, value, headers, message.Timestamp, transaction);
        }
        catch (Exception e) when (SerdeFailureClassifier.IsRegistryUnavailable(e) && !cancellationToken.IsCancellationRequested)
        {
            // The record is not at fault: a transient failure, which ExecuteAsync retries. A failure of the record's
            // own (an incompatible schema, say) propagates as it is, as from a synchronous serializer: not retried.
            throw unit.Telemetry.Failed(unit.Errors.RegistryUnavailable(topic, component, e));
        }
    }

    /// <summary>Writes a record <see cref="SerializeAsync"/> serialized, if its transaction is still the open one.</summary>
    public void Produce(string topic, TopicPartition? topicPartition, in SerializedRecord record)
    {
        var state = unit.State;
        if (state != TransactionState.InTransaction || unit.Transaction.Number != record.Transaction)
        {
            throw new InvalidOperationException(
                $"ProduceAsync to '{topic}' is refused: the transaction of '{unit.TransactionalId}' it was called in ended while its record was being serialized (the unit is now {state}). " +
                "Await every ProduceAsync before the transaction commits or aborts.");
        }

        ThrowIfBroken(nameof(ITransactionScope.ProduceAsync));
        ProduceSerialized(topic, topicPartition, record.Key, record.Value, record.Headers, record.Timestamp);
    }

    private async ValueTask SerializeThenProduceAsync<TKey, TValue>(string topic, TopicPartition? topicPartition, Message<TKey, TValue> message, CancellationToken cancellationToken)
    {
        var record = await SerializeAsync(topic, message, cancellationToken).ConfigureAwait(false);
        Produce(topic, topicPartition, record);
    }

    private void ProduceSerialized(string topic, TopicPartition? topicPartition, byte[]? key, byte[]? value, Headers? headers, Timestamp timestamp)
    {
        // The byte-level message is rented, not allocated: Confluent.Kafka reads it during Produce and keeps no
        // reference to it, so the hot path allocates nothing beyond what Confluent.Kafka itself allocates.
        var raw = ScratchMessage.Rent(key, value, headers, timestamp);
        try
        {
            unit.Producer.Produce(topic, topicPartition, raw, unit.Transaction.TracksDeliveryOf(topic), unit.Transaction.Cancellation);
            unit.Transaction.Produced();
        }
        catch (ProduceException<byte[]?, byte[]?> e)
        {
            throw ProduceFailed(topic, e);
        }
        finally
        {
            ScratchMessage.Return(raw);
        }
    }

    public async Task SendOffsetsAsync(List<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken)
    {
        ThrowIfBroken(nameof(ITransactionScope.SendOffsetsAsync));
        if (unit.Transaction.IsExpired(out var age))
        {
            throw unit.Telemetry.Failed(unit.Errors.Expired(nameof(ITransactionScope.SendOffsetsAsync), age));
        }

        try
        {
            await unit.Producer.SendOffsetsAsync(offsets, groupMetadata, cancellationToken).ConfigureAwait(false);
            unit.Telemetry.OffsetsSent(offsets.Count);
        }
        catch (KafkaException e)
        {
            unit.Telemetry.Error(e);
            var kind = TransactionErrorClassifier.Classify(e.Error);
            throw kind switch
            {
                TransactionErrorKind.Fenced => orchestrator.Terminate(kind, e, "SendOffsetsToTransaction failed"),
                TransactionErrorKind.Fatal => Broke(e, "SendOffsetsToTransaction"),

                // The transaction is still open but may not commit: the caller (or ExecuteAsync) aborts it.
                _ => unit.Telemetry.Failed(unit.Errors.SendOffsetsFailed(kind, offsets.Count, e)),
            };
        }
    }

    private KafkaTransactionException ProduceFailed(string topic, ProduceException<byte[]?, byte[]?> e)
    {
        unit.Telemetry.Error(e);
        var kind = TransactionErrorClassifier.Classify(e.Error);
        return kind switch
        {
            TransactionErrorKind.Fenced => orchestrator.Terminate(kind, e, $"Produce to '{topic}' failed"),
            TransactionErrorKind.Fatal => Broke(e, $"Produce to '{topic}'"),
            _ => unit.Telemetry.Failed(unit.Errors.ProduceRefused(kind, topic, e)),
        };
    }

    private void ThrowIfBroken(string operation)
    {
        if (unit.Session.BrokenBy is { } broken)
        {
            throw unit.Telemetry.Failed(unit.Errors.Broken(operation, broken));
        }
    }

    /// <summary>
    /// A fatal error hit the open transaction (produce, send offsets). The transaction can only be aborted now, which
    /// replaces the producer; the caller sees an abortable failure. Faulted when the producer may not be replaced.
    /// </summary>
    private KafkaTransactionException Broke(KafkaException cause, string what)
    {
        if (!unit.Session.CanReplace(cause.Error))
        {
            return orchestrator.Terminate(TransactionErrorKind.Fatal, cause, $"{what} failed");
        }

        unit.Session.MarkBroken(cause);
        return unit.Telemetry.Failed(unit.Errors.Broke(what, cause));
    }
}
