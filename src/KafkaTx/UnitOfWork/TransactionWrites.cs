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
        var component = MessageComponentType.Key;
        byte[]? key, value;
        try
        {
            key = serializers.Serialize(message.Key, new SerializationContext(component, topic, headers));
            component = MessageComponentType.Value;
            value = serializers.Serialize(message.Value, new SerializationContext(component, topic, headers));
        }
        catch (Exception e) when (IsSerializerFailure(e))
        {
            throw SerializationFailed(nameof(ITransactionScope.Produce), topic, component, e);
        }

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

    /// <summary>
    /// Serializes a record for the open transaction, which counts it in flight until it is written (<see cref="Produce(string, TopicPartition?, in SerializedRecord)"/>)
    /// or refused (<see cref="OpenTransaction.RefuseWrite"/>): the transaction does not commit meanwhile. A registry
    /// that cannot be reached, or does not answer within the transaction's remaining time, fails it as Retriable; a
    /// serializer that refuses the record, as Rejected; a cancelled caller returns at once (OperationCanceledException).
    /// </summary>
    /// <param name="topic">The record's topic.</param>
    /// <param name="message">The record.</param>
    /// <param name="cancellationToken">The caller's token.</param>
    /// <param name="onlyIn">The transaction the write belongs to (a concurrent handler call's), or null for the open one.</param>
    public async ValueTask<SerializedRecord> SerializeAsync<TKey, TValue>(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken, long? onlyIn = null)
    {
        ThrowIfBroken(nameof(ITransactionScope.ProduceAsync));
        if (!unit.Transaction.TryStartWrite(onlyIn, out var transaction))
        {
            throw Refused(topic, unit.State);
        }

        if (unit.Transaction.IsTooLateToCommit(out var age))
        {
            // The work before this write used the time up: a serializer given none would look like a registry outage.
            unit.Transaction.EndWrite(transaction);
            throw unit.Telemetry.Failed(unit.Errors.TooLateToSerialize(topic, age));
        }

        var headers = unit.Telemetry.WithTraceContext(message.Headers);
        var component = MessageComponentType.Key;
        try
        {
            var key = await SerializeInTimeAsync(message.Key, new SerializationContext(component, topic, headers), cancellationToken).ConfigureAwait(false);
            component = MessageComponentType.Value;
            var value = await SerializeInTimeAsync(message.Value, new SerializationContext(component, topic, headers), cancellationToken).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            return new SerializedRecord(key, value, headers, message.Timestamp, transaction);
        }
        catch (Exception e)
        {
            unit.Transaction.EndWrite(transaction); // nothing will be written: the transaction may commit without it
            if ((e is OperationCanceledException && cancellationToken.IsCancellationRequested) || !IsSerializerFailure(e))
            {
                throw;
            }

            throw SerializationFailed(nameof(ITransactionScope.ProduceAsync), topic, component, e);
        }
    }

    /// <summary>
    /// Writes a record <see cref="SerializeAsync"/> serialized, if its transaction is still the open one: checked and
    /// written atomically with the commit and the abort, which stop the writes before they end the transaction.
    /// </summary>
    public void Produce(string topic, TopicPartition? topicPartition, in SerializedRecord record)
    {
        var written = unit.Transaction.TryWrite(
            record.Transaction,
            static write => write.Writes.WriteSerialized(write.Topic, write.TopicPartition, write.Record),
            (Writes: this, Topic: topic, TopicPartition: topicPartition, Record: record));
        if (!written)
        {
            throw Refused(topic, unit.State);
        }
    }

    private void WriteSerialized(string topic, TopicPartition? topicPartition, in SerializedRecord record)
    {
        ThrowIfBroken(nameof(ITransactionScope.ProduceAsync));
        ProduceSerialized(topic, topicPartition, record.Key, record.Value, record.Headers, record.Timestamp);
    }

    private InvalidOperationException Refused(string topic, TransactionState state) => new(
        $"ProduceAsync to '{topic}' is refused: the transaction of '{unit.TransactionalId}' it was called in ended while its record was being serialized (the unit is now {state}). " +
        "Await every ProduceAsync before the transaction commits or aborts.");

    private async ValueTask SerializeThenProduceAsync<TKey, TValue>(string topic, TopicPartition? topicPartition, Message<TKey, TValue> message, CancellationToken cancellationToken)
    {
        var record = await SerializeAsync(topic, message, cancellationToken).ConfigureAwait(false);
        Produce(topic, topicPartition, record);
    }

    /// <summary>
    /// Awaits a key's or value's serializer, for as long as the caller waits and at most until the transaction's
    /// commit margin: a registry slower than that fails the record as unavailable (TimeoutException) while the
    /// transaction can still abort in time, rather than outlive it (the broker would abort it, and fence the producer).
    /// </summary>
    private async ValueTask<byte[]?> SerializeInTimeAsync<T>(T data, SerializationContext context, CancellationToken cancellationToken)
    {
        var serializing = unit.Options.Serializers.SerializeAsync(data, context);
        if (serializing.IsCompleted)
        {
            return await serializing.ConfigureAwait(false);
        }

        var task = serializing.AsTask();
        var left = unit.Transaction.TimeLeftToSerialize();
        try
        {
            return await task.WaitAsync(left, unit.Time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!task.IsCompleted && e is TimeoutException or OperationCanceledException)
        {
            AbandonedSerdeCall.Observe(task); // given up: the serialization goes on without a caller
            if (e is TimeoutException)
            {
                var timeout = unit.Options.TransactionTimeout;
                throw new TimeoutException(
                    $"The schema registry did not answer within the transaction's remaining time ({left.TotalMilliseconds:F0} ms: TransactionTimeout {timeout.TotalMilliseconds:F0} ms, " +
                    $"less the {OpenTransaction.CommitMargin(timeout).TotalMilliseconds:F0} ms kept for the commit and the time the transaction had been open).", e);
            }

            throw;
        }
    }

    /// <summary>Whether a serializer failed (not KafkaTx's own refusal, such as no serializer registered for the type, nor a cancellation).</summary>
    private static bool IsSerializerFailure(Exception e) =>
        e is not (SerializerRegistry.NotUsableException or KafkaTransactionException or OperationCanceledException) || SerdeFailureClassifier.IsRegistryUnavailable(e);

    /// <summary>
    /// A serializer's failure: the registry's (unreachable, failing, too slow: Retriable, the record is not at fault)
    /// or the record's own (refused by its schema, say: Rejected, retrying will not help).
    /// </summary>
    private KafkaTransactionException SerializationFailed(string operation, string topic, MessageComponentType component, Exception e) =>
        unit.Telemetry.Failed(SerdeFailureClassifier.IsRegistryUnavailable(e)
            ? unit.Errors.RegistryUnavailable(operation, topic, component, e)
            : unit.Errors.SerializationRejected(operation, topic, component, e));

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
