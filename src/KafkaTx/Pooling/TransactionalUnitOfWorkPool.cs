using System.Collections.Concurrent;
using KafkaTx.DependencyInjection;

namespace KafkaTx.Pooling;

/// <summary>
/// Leases slots to ExecuteAsync callers: a semaphore counts idle slots, a stack holds them (the most recently used
/// first, so that a lightly loaded service keeps using the same few warm producers).
/// </summary>
internal sealed class TransactionalUnitOfWorkPool : ITransactionalUnitOfWorkPool
{
    private readonly string _name;
    private readonly TransactionalUnitOfWorkFactory _factory;
    private readonly SemaphoreSlim _idleSlots;
    private readonly ConcurrentStack<TransactionalUnitOfWork> _idle = new();
    private readonly TransactionalUnitOfWork?[] _slots;
    private readonly Lock _createLock = new();
    private int _created;
    private int _disposed;

    public TransactionalUnitOfWorkPool(string name, int size, TransactionalUnitOfWorkFactory factory)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        _name = name;
        _factory = factory;
        _slots = new TransactionalUnitOfWork?[size];
        _idleSlots = new SemaphoreSlim(size, size);
        TransactionalIds = [.. Enumerable.Range(0, size).Select(slot => factory.SlotTransactionalId(name, slot))];
    }

    public int Size => _slots.Length;

    public IReadOnlyList<string> TransactionalIds { get; }

    /// <summary>The slots created so far (for health checks, which must not create producers).</summary>
    internal IReadOnlyList<TransactionalUnitOfWork> CreatedSlots
    {
        get
        {
            lock (_createLock)
            {
                return [.. _slots.Take(_created).Select(s => s!)];
            }
        }
    }

    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
        lock (_createLock)
        {
            while (_created < Size)
            {
                _idle.Push(CreateNextSlot());
            }
        }

        foreach (var unit in _slots)
        {
            await unit!.InitializeAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default) =>
        ExecuteAsync(TransactionalUnitOfWork.WithResult(work), cancellationToken);

    public async Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
        await _idleSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
        var unit = Lease();
        try
        {
            return await unit.ExecuteAsync(work, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _idle.Push(unit);
            _idleSlots.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        foreach (var unit in CreatedSlots)
        {
            await unit.DisposeAsync().ConfigureAwait(false);
        }

        _idleSlots.Dispose();
    }

    /// <summary>An idle slot, created now if every slot created so far is leased.</summary>
    private TransactionalUnitOfWork Lease()
    {
        var spin = default(SpinWait);
        while (true)
        {
            if (_idle.TryPop(out var unit))
            {
                return unit;
            }

            lock (_createLock)
            {
                if (_created < Size)
                {
                    return CreateNextSlot();
                }
            }

            // Every slot exists and the semaphore admitted this caller, so one is being handed back right now.
            spin.SpinOnce();
        }
    }

    private TransactionalUnitOfWork CreateNextSlot()
    {
        var unit = _factory.CreateSlot(_name, _created);
        _slots[_created] = unit;
        _created++;
        return unit;
    }
}
