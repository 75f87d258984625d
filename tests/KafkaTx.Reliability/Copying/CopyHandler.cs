using Confluent.Kafka;

namespace KafkaTx.Reliability.Copying;

/// <summary>Where a copier writes, and the switch that pauses it in mid-transaction (the in-process SIGSTOP).</summary>
internal sealed class CopyTarget(string topic)
{
    private readonly object _sync = new();
    private TaskCompletionSource? _paused;
    private long _pauseAt = long.MaxValue;
    private long _handled;

    public string Topic { get; } = topic;

    /// <summary>Records handled by this copier, committed or not.</summary>
    public long Handled => Interlocked.Read(ref _handled);

    /// <summary>The handler stops once it has handled <paramref name="records"/> more, in mid-transaction, until <see cref="Resume"/>.</summary>
    public void PauseAfter(long records)
    {
        lock (_sync)
        {
            _pauseAt = Handled + records;
            _paused ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    public void Resume()
    {
        lock (_sync)
        {
            _pauseAt = long.MaxValue;
            _paused?.TrySetResult();
            _paused = null;
        }
    }

    public Task WhilePaused(CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            return _paused is { } paused && Handled >= _pauseAt ? paused.Task.WaitAsync(cancellationToken) : Task.CompletedTask;
        }
    }

    public void Counted() => Interlocked.Increment(ref _handled);
}

/// <summary>Copies each record unchanged: same key (so an input partition's records stay together), same value.</summary>
internal sealed class CopyHandler(CopyTarget target) : ITransactionalHandler<byte[], byte[]>
{
    public async ValueTask HandleAsync(ConsumeResult<byte[], byte[]> record, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        await target.WhilePaused(cancellationToken);
        transaction.Produce(target.Topic, new Message<byte[], byte[]> { Key = record.Message.Key, Value = record.Message.Value });
        target.Counted();
    }
}
