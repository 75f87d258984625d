using Confluent.Kafka;
using KafkaTx.DependencyInjection;
using KafkaTx.Telemetry;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Pooling;

/// <summary>
/// Leases slots to ExecuteAsync callers: a semaphore counts the slots a caller may take (idle ones, and ones not created
/// yet), and idle slots wait in a queue, least recently used first, so that every slot takes its turn: a slot whose
/// commit outcome was left unknown is settled by its next call soon, instead of failing or waiting behind the others.
/// </summary>
/// <remarks>
/// <para>A permit is always given back, whatever fails (creating a slot included), so the pool never shrinks.</para>
/// <para>A slot is never handed out when it cannot serve: a Faulted slot gets a new producer (ResetAsync) first. Once
/// a slot is Fenced, the pool hands out no slot at all, and creates or initializes none: every slot's transactional.id
/// is this instance's prefix with a slot number, so a newer instance with the same InstanceId owns them all, and
/// initializing another slot here would fence that instance's slot in turn. The pool is a zombie; every call is
/// refused, as a fenced unit of work refuses them.</para>
/// </remarks>
internal sealed class TransactionalUnitOfWorkPool : ITransactionalUnitOfWorkPool
{
    private readonly string _name;
    private readonly TransactionalUnitOfWorkFactory _factory;

    // Not disposed: calls in flight give their permits back after the pool is disposed, and a SemaphoreSlim whose
    // wait handle is never asked for holds nothing to release.
    private readonly SemaphoreSlim _permits;
    private readonly Queue<TransactionalUnitOfWork> _idle = new();
    private readonly TransactionalUnitOfWork?[] _slots;
    private readonly Lock _lock = new();
    private int _created;
    private int _disposed;
    private TransactionalUnitOfWork? _fenced;

    public TransactionalUnitOfWorkPool(string name, int size, TransactionalUnitOfWorkFactory factory)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        _name = name;
        _factory = factory;
        _slots = new TransactionalUnitOfWork?[size];
        _permits = new SemaphoreSlim(size);
        TransactionalIds = [.. Enumerable.Range(0, size).Select(slot => factory.SlotTransactionalId(name, slot))];
    }

    public int Size => _slots.Length;

    public IReadOnlyList<string> TransactionalIds { get; }

    /// <summary>The slots created so far (for health checks, which must not create producers).</summary>
    internal IReadOnlyList<TransactionalUnitOfWork> CreatedSlots
    {
        get
        {
            lock (_lock)
            {
                return [.. _slots.Take(_created).Select(s => s!)];
            }
        }
    }

    /// <summary>The slot found fenced, if one was: the pool then refuses every call.</summary>
    internal TransactionalUnitOfWork? FencedSlot => Volatile.Read(ref _fenced);

    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfUnusable(nameof(InitializeAsync));
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed == 1, this);
            while (_created < Size)
            {
                _idle.Enqueue(CreateNextSlot());
            }
        }

        foreach (var unit in CreatedSlots)
        {
            // A slot found fenced stops the others from being initialized: they would fence the newer instance's.
            ThrowIfUnusable(nameof(InitializeAsync));
            try
            {
                await unit.InitializeAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                NoteIfFenced(unit);
            }
        }
    }

    public Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default) =>
        ExecuteAsync(TransactionalUnitOfWork.WithResult(work), cancellationToken);

    public async Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        ThrowIfUnusable(nameof(ExecuteAsync));
        await _permits.WaitAsync(cancellationToken).ConfigureAwait(false);
        TransactionalUnitOfWork? unit = null;
        try
        {
            ThrowIfUnusable(nameof(ExecuteAsync)); // disposed or fenced while this caller waited
            unit = Lease();
            if (NoteIfFenced(unit))
            {
                ThrowIfUnusable(nameof(ExecuteAsync));
            }

            if (unit.State == TransactionState.Faulted)
            {
                Log.PoolSlotReset(unit.Logger, unit.TransactionalId);
                await unit.ResetAsync(cancellationToken).ConfigureAwait(false);
            }

            return await unit.ExecuteAsync(work, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (unit is not null)
            {
                NoteIfFenced(unit);
                lock (_lock)
                {
                    _idle.Enqueue(unit);
                }
            }

            _permits.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        TransactionalUnitOfWork[] slots;
        lock (_lock)
        {
            // Under the lock that creates slots: a caller past its own disposed check creates its slot before this
            // snapshot (and it is disposed here) or finds the pool disposed in Lease; no slot escapes disposal.
            if (Interlocked.Exchange(ref _disposed, 1) == 1)
            {
                return;
            }

            slots = [.. _slots.Take(_created).Select(s => s!)];
        }

        // Callers waiting for a slot wake up, find the pool disposed and give their permit back.
        _permits.Release(Size);

        // Each slot waits (bounded) for its call in flight; they wait side by side, not one after another.
        await Task.WhenAll(slots.Select(unit => unit.DisposeAsync().AsTask())).ConfigureAwait(false);
    }

    /// <summary>The least recently used idle slot, or a new one when every slot created so far is leased.</summary>
    private TransactionalUnitOfWork Lease()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed == 1, this); // disposed since the caller's own check
            if (_idle.TryDequeue(out var unit))
            {
                return unit;
            }

            if (_created < Size)
            {
                // If creating it throws, nothing changed: the caller's permit is given back and a later call tries again.
                return CreateNextSlot();
            }
        }

        // A permit stands for an idle slot or one not created yet, and slots go back to the queue before their permit.
        throw new InvalidOperationException($"The pool of '{_name}' admitted a caller with no slot idle and none left to create; this is a bug in KafkaTx.");
    }

    private TransactionalUnitOfWork CreateNextSlot()
    {
        var unit = _factory.CreateSlot(_name, _created);
        _slots[_created] = unit;
        _created++;
        return unit;
    }

    /// <summary>Whether the slot is fenced; the first fenced slot found makes the pool refuse every call from then on.</summary>
    private bool NoteIfFenced(TransactionalUnitOfWork unit)
    {
        if (unit.State != TransactionState.Fenced)
        {
            return false;
        }

        if (Interlocked.CompareExchange(ref _fenced, unit, null) is null)
        {
            Log.PoolFenced(unit.Logger, unit.TransactionalId);
        }

        return true;
    }

    private void ThrowIfUnusable(string operation)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
        if (Volatile.Read(ref _fenced) is { } fenced)
        {
            var cause = fenced.EndedBy ?? new Error(ErrorCode.Local_Fenced, "fenced");
            throw new KafkaTransactionException(TransactionErrorKind.Fenced, cause,
                $"{operation} is not valid: pool slot '{fenced.TransactionalId}' is Fenced ({cause.Code}: {cause.Reason}). A newer instance with this instance's transactional.ids took over, so this pool is a zombie and refuses every call; " +
                "it creates and initializes no other slot, which would fence the newer instance's. Never retry: replace this instance (stop it). If no restart explains it, two instances share one InstanceId (docs/transactional-id.md).",
                TransactionState.Fenced) { TransactionalId = fenced.TransactionalId };
        }
    }
}
