using System.Diagnostics;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Processing;

/// <summary>
/// The batch of the open transaction: its DI scope and the handler resolved from it, when it began, its span, and the
/// records whose handlers completed in it. Those records are where the processor's committed offsets come from
/// (<see cref="NextOffsets"/>): never the consumer's position, which may lie past a record consumed and not handled.
/// </summary>
/// <remarks>Used on the processor's thread only. Created once the transaction has begun; disposed when it ends.</remarks>
internal sealed class OpenBatch<TKey, TValue> : IAsyncDisposable
{
    private readonly List<RecordKey> _handled;
    private readonly AsyncServiceScope _scope;
    private readonly IServiceScopeFactory _scopes;
    private ITransactionalHandler<TKey, TValue>? _handler;
    private ITransactionalBatchHandler<TKey, TValue>? _batchHandler; // instead of _handler with a batch handler
    private ITransactionalHandler<TKey, TValue>?[]? _slotHandlers; // concurrent handling: a handler per slot beyond the first
    private AsyncServiceScope?[]? _slotScopes;   // by slot: each slot's scope, once used; null again once detached
    private bool _scopeDetached;                 // the batch's own scope went with an abandoned call of slot 0
    private string? _deadLetterTopic;

    private OpenBatch(IServiceScopeFactory scopes, AsyncServiceScope scope, long startedAt, Activity? activity, List<RecordKey> handled)
    {
        _scopes = scopes;
        _scope = scope;
        _handled = handled;
        _handled.Clear();
        StartedAt = startedAt;
        Activity = activity;
    }

    /// <summary>When the transaction began (a <see cref="TimeProvider"/> timestamp).</summary>
    public long StartedAt { get; }

    /// <summary>The batch's span, or null when nobody listens.</summary>
    public Activity? Activity { get; }

    /// <summary>The records handled in this transaction (dead-lettered and skipped ones included), in order.</summary>
    public IReadOnlyList<RecordKey> Handled => _handled;

    /// <summary>How many records the transaction holds.</summary>
    public int Count => _handled.Count;

    /// <summary>
    /// The dead-letter topic, when the batch holds nothing but one poison record written there: its failing commit is
    /// then the dead-letter write failing, which retrying cannot cure.
    /// </summary>
    public string? OnlyDeadLetterTopic => _handled.Count == 1 ? _deadLetterTopic : null;

    /// <summary>Opens the batch with its own scope: user code, run with no synchronization context.</summary>
    /// <param name="scopes">Creates the batch's scope.</param>
    /// <param name="startedAt">When the transaction began.</param>
    /// <param name="activity">The batch's span.</param>
    /// <param name="handled">
    /// The list that holds the records handled, emptied here: the previous batch's, once it has ended, so that batches
    /// do not grow a list of their own at every batch.
    /// </param>
    public static OpenBatch<TKey, TValue> Open(IServiceScopeFactory scopes, long startedAt, Activity? activity, List<RecordKey> handled)
    {
        using (ProcessorThread.WithoutContext()) // scoped services' factories
        {
            return new OpenBatch<TKey, TValue>(scopes, scopes.CreateAsyncScope(), startedAt, activity, handled);
        }
    }

    /// <summary>Resolves the batch's handler (a record or a batch handler) from its scope: user code, run with no synchronization context.</summary>
    public void ResolveHandler(Type handlerType)
    {
        using (ProcessorThread.WithoutContext()) // the handler's and its dependencies' constructors
        {
            var handler = _scope.ServiceProvider.GetRequiredService(handlerType);
            _batchHandler = handler as ITransactionalBatchHandler<TKey, TValue>;
            _handler = _batchHandler is null ? (ITransactionalHandler<TKey, TValue>)handler : null;
        }
    }

    /// <summary>
    /// The handler of a concurrent handler slot: slot 0's is the batch's own; every other slot resolves its own from
    /// a scope of its own, on first use in the batch, so that two handler calls running at once never share a scoped
    /// service (a DbContext is not thread-safe). The scopes end with the batch.
    /// </summary>
    public ITransactionalHandler<TKey, TValue> HandlerForSlot(int slot, int slots, Type handlerType)
    {
        if (slot == 0)
        {
            return _handler!;
        }

        _slotHandlers ??= new ITransactionalHandler<TKey, TValue>?[slots];
        if (_slotHandlers[slot] is { } handler)
        {
            return handler;
        }

        using (ProcessorThread.WithoutContext()) // scoped services' factories, the handler's constructor
        {
            var scope = _scopes.CreateAsyncScope();
            (_slotScopes ??= new AsyncServiceScope?[slots])[slot] = scope;
            handler = (ITransactionalHandler<TKey, TValue>)scope.ServiceProvider.GetRequiredService(handlerType);
        }

        return _slotHandlers[slot] = handler;
    }

    /// <summary>
    /// Takes the DI scope of <paramref name="slot"/> out of the batch: its call was abandoned and may still use it, so
    /// it is disposed when that call ends, not with the batch. Slot 0's is the batch's own scope.
    /// </summary>
    public IAsyncDisposable? DetachScope(int slot)
    {
        if (slot == 0)
        {
            _scopeDetached = true;
            return _scope;
        }

        if (_slotScopes?[slot] is not { } scope)
        {
            return null;
        }

        _slotScopes[slot] = null;
        _slotHandlers![slot] = null;
        return scope;
    }

    /// <summary>
    /// Calls the handler with no synchronization context, so that its continuations run on the thread pool rather than
    /// queue behind the processor's, and a handler that blocks on a task cannot deadlock it.
    /// </summary>
    public ValueTask HandleAsync(ConsumeResult<TKey, TValue> record, ITransactionalUnitOfWork unit, CancellationToken cancellationToken)
    {
        using (ProcessorThread.WithoutContext())
        {
            return _handler!.HandleAsync(record, unit, cancellationToken);
        }
    }

    /// <summary>Calls the batch handler with the batch's records, with no synchronization context, as <see cref="HandleAsync"/>.</summary>
    public ValueTask HandleBatchAsync(IReadOnlyList<ConsumeResult<TKey, TValue>> records, ITransactionalUnitOfWork unit, CancellationToken cancellationToken)
    {
        using (ProcessorThread.WithoutContext())
        {
            return _batchHandler!.HandleAsync(records, unit, cancellationToken);
        }
    }

    /// <summary>The record's handler completed (or the poison record policy skipped it): its offset commits with the batch.</summary>
    public void AddHandled(RecordKey key) => _handled.Add(key);

    /// <summary>The poison record was written to the dead-letter topic in this transaction: its offset commits with it.</summary>
    public void DeadLettered(RecordKey key, string deadLetterTopic)
    {
        _deadLetterTopic = deadLetterTopic;
        _handled.Add(key);
    }

    /// <summary>
    /// Per partition, the offset after the last record handled: the offsets this transaction commits. Where that
    /// offset holds a transaction marker, the next read skips it.
    /// </summary>
    public List<TopicPartitionOffset> NextOffsets()
    {
        var next = new Dictionary<(string Topic, int Partition), long>(); // by name and number: no TopicPartition per record
        foreach (var key in _handled)
        {
            if (!next.TryGetValue(key.Where, out var offset) || offset <= key.Offset)
            {
                next[key.Where] = key.Offset + 1;
            }
        }

        return [.. next.Select(p => new TopicPartitionOffset(p.Key.Topic, p.Key.Partition, p.Value))];
    }

    /// <summary>The partitions read in this transaction.</summary>
    public IEnumerable<TopicPartition> Partitions() => _handled.Select(k => k.Where).Distinct().Select(p => new TopicPartition(p.Topic, p.Partition));

    /// <summary>Disposes the batch's scope: user code (scoped services' Dispose may block on their own tasks).</summary>
    public ValueTask DisposeAsync()
    {
        if (_slotScopes is not null)
        {
            return DisposeAllAsync();
        }

        if (_scopeDetached)
        {
            return ValueTask.CompletedTask;
        }

        using (ProcessorThread.WithoutContext())
        {
            return _scope.DisposeAsync();
        }
    }

    private async ValueTask DisposeAllAsync()
    {
        // Every scope is disposed even when one throws (user code: a scoped service's Dispose); the first failure is
        // rethrown once all are done, as a single scope's would be.
        Exception? first = null;
        foreach (var slotScope in _slotScopes!)
        {
            try
            {
                if (slotScope is { } scope)
                {
                    await DisposeWithoutContext(scope).ConfigureAwait(true); // back on the processor's thread
                }
            }
            catch (Exception e)
            {
                first ??= e;
            }
        }

        try
        {
            if (!_scopeDetached)
            {
                await DisposeWithoutContext(_scope).ConfigureAwait(true);
            }
        }
        catch (Exception e)
        {
            first ??= e;
        }

        if (first is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
        }
    }

    private static ValueTask DisposeWithoutContext(AsyncServiceScope scope)
    {
        using (ProcessorThread.WithoutContext())
        {
            return scope.DisposeAsync();
        }
    }
}
