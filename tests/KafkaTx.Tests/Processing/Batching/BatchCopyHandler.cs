using System.Collections.Concurrent;
using Confluent.Kafka;

namespace KafkaTx.Tests.Processing.Batching;

/// <summary>What the test batch handler does with each call, and what it saw.</summary>
internal sealed class BatchScript
{
    /// <summary>Each call's record values, in call order.</summary>
    public ConcurrentQueue<string[]> Calls { get; } = new();

    /// <summary>Decides whether a call (its values, and its number from 1) throws, after it has written its copies.</summary>
    public Func<string[], int, bool> Fail { get; set; } = (_, _) => false;

    /// <summary>Awaited with the handler's token before the call ends (null: the call completes synchronously).</summary>
    public Func<string[], CancellationToken, Task>? Await { get; set; }

    /// <summary>Run at the start of each call, on its values.</summary>
    public Action<string[]>? OnCall { get; set; }

    /// <summary>Calls that ended with their token cancelled.</summary>
    public ConcurrentQueue<string[]> Cancelled { get; } = new();

    /// <summary>Whether any call ran with a synchronization context (the processor's thread must not leak into it).</summary>
    public bool SawSynchronizationContext { get; set; }

    public int CallCount => Calls.Count;

    /// <summary>The calls that held <paramref name="value"/>.</summary>
    public int CallsWith(string value) => Calls.Count(c => c.Contains(value));
}

/// <summary>
/// Copies every record of the call to "out" first, then awaits and fails as scripted: a failed call's copies are in
/// the aborted transaction, so any of them committed would show as a duplicate.
/// </summary>
internal sealed class BatchCopyHandler(BatchScript script) : ITransactionalBatchHandler<string, string>
{
    public async ValueTask HandleAsync(IReadOnlyList<ConsumeResult<string, string>> records, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        var values = records.Select(r => r.Message.Value).ToArray();
        script.Calls.Enqueue(values);
        script.SawSynchronizationContext |= SynchronizationContext.Current is not null;
        script.OnCall?.Invoke(values);
        foreach (var record in records)
        {
            transaction.Produce("out", new Message<string, string> { Key = record.Message.Key, Value = record.Message.Value });
        }

        if (script.Await is { } wait)
        {
            try
            {
                await wait(values, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                script.Cancelled.Enqueue(values);
                throw;
            }
        }

        if (script.Fail(values, script.CallCount))
        {
            throw new InvalidDataException($"cannot handle a batch of {values.Length} from {values[0]}");
        }
    }
}
