using Confluent.Kafka;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Processing.Concurrent;

/// <summary>What one call's handler writes through: its slot's unit of work (<see cref="HandlerCall"/>), while that call may write.</summary>
internal sealed class HandlerCallScope(HandlerCall slot, int generation, ConsumeResult<byte[]?, byte[]?> raw, long transaction) : ITransactionScope
{
    private int _writesPending; // this call's ProduceAsync calls still serializing (not another call's of the slot)

    public int WritesPending => Volatile.Read(ref _writesPending);

    public string TransactionalId => slot.Unit.TransactionalId;

    public void Produce<TKey, TValue>(string topic, Message<TKey, TValue> message)
    {
        lock (slot.SyncRoot)
        {
            slot.ThrowIfClosed(generation, raw);
            slot.Unit.Produce(topic, message);
        }
    }

    public void Produce<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message)
    {
        lock (slot.SyncRoot)
        {
            slot.ThrowIfClosed(generation, raw);
            slot.Unit.Produce(topicPartition, message);
        }
    }

    public ValueTask ProduceAsync<TKey, TValue>(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken = default) =>
        ProduceAsync(topic, null, message, cancellationToken);

    public ValueTask ProduceAsync<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topicPartition);
        return ProduceAsync(topicPartition.Topic, topicPartition, message, cancellationToken);
    }

    private async ValueTask ProduceAsync<TKey, TValue>(string topic, TopicPartition? topicPartition, Message<TKey, TValue> message, CancellationToken cancellationToken)
    {
        if (slot.Unit is not ISerializingUnit unit || unit.SerializesSynchronously<TKey, TValue>())
        {
            // Synchronous serializers (or a unit of work other than KafkaTx's own): Produce, completed at once.
            if (topicPartition is null)
            {
                Produce(topic, message);
            }
            else
            {
                Produce(topicPartition, message);
            }

            return;
        }

        lock (slot.SyncRoot)
        {
            if (slot.ClosedBecause(generation) is { } reason)
            {
                unit.RefuseLate(transaction); // its record is missing: the call's transaction, if still open, may not commit
                throw slot.Refusal(reason, raw);
            }
        }

        // Serialized outside the lock (it may await the registry); written under it, if the call may still write:
        // a call that returned without awaiting its ProduceAsync must not write into the batch's transaction, and
        // its record must not silently go missing either: the refusal fails the batch (its commit aborts, and the
        // batch is rewound and runs again).
        SerializedRecord serialized;
        Interlocked.Increment(ref _writesPending);
        try
        {
            serialized = await unit.SerializeAsync(topic, message, transaction, cancellationToken).ConfigureAwait(false);
        }
        catch when (slot.IsClosed(generation))
        {
            unit.RefuseLate(transaction); // failed after its call returned: nobody saw it, so the transaction may not commit
            throw;
        }
        finally
        {
            Interlocked.Decrement(ref _writesPending);
        }
        lock (slot.SyncRoot)
        {
            if (slot.ClosedBecause(generation) is { } reason)
            {
                unit.RefuseLate(serialized);
                throw slot.Refusal(reason, raw);
            }

            unit.Produce(topic, topicPartition, serialized);
        }
    }

    public async Task SendOffsetsAsync(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken = default)
    {
        lock (slot.SyncRoot)
        {
            slot.ThrowIfClosed(generation, raw);
            slot.OffsetsSending(+1);
        }

        try
        {
            await slot.Unit.SendOffsetsAsync(offsets, groupMetadata, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            lock (slot.SyncRoot)
            {
                slot.OffsetsSending(-1);
            }
        }
    }
}
