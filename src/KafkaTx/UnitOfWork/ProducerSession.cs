using Confluent.Kafka;
using KafkaTx.Clients;
using KafkaTx.Retry;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// The unit's producer and its self-healing: a fatal error that is not fencing replaces the producer instead of ending
/// the unit, at most <see cref="KafkaTransactionsOptions.MaxProducerReplacements"/> times in a row. The new producer's
/// InitTransactions aborts whatever the old one left open, so nothing of the failed transaction becomes visible.
/// </summary>
/// <remarks>
/// A fatal error that hits an open transaction (a produce, offsets) only marks the producer broken: the transaction
/// must be aborted first, which replaces it. Until then every call of the transaction fails at once, without touching
/// the producer. The session decides nothing about states; it answers what may be done and does it.
/// </remarks>
internal sealed class ProducerSession(KafkaTransactionsOptions options, TransactionalProducer producer, UnitTelemetry telemetry)
{
    private KafkaException? _brokenBy;
    private int _replacementsInARow;
    private TimeSpan _backoffBeforeInit;

    public TransactionalProducer Producer => producer;

    /// <summary>The fatal error that broke the producer while a transaction was open, if one did.</summary>
    public KafkaException? BrokenBy => Volatile.Read(ref _brokenBy);

    /// <summary>Producers replaced by self-healing since a transaction last completed.</summary>
    public int ReplacementsInARow => Volatile.Read(ref _replacementsInARow);

    /// <summary>How long to wait before initializing a replacement: a fatal error that comes back at once should not spin.</summary>
    public TimeSpan BackoffBeforeInit => _backoffBeforeInit;

    /// <summary>Whether a fatal error may be healed by a new producer: not an authorization failure, and within the budget.</summary>
    public bool CanReplace(Error error) =>
        error.Code is not (ErrorCode.TransactionalIdAuthorizationFailed or ErrorCode.ClusterAuthorizationFailed)
        && _replacementsInARow < options.MaxProducerReplacements;

    /// <summary>A fatal error hit the open transaction: the producer is replaced when the transaction is aborted.</summary>
    public void MarkBroken(KafkaException cause) => Interlocked.CompareExchange(ref _brokenBy, cause, null);

    /// <summary>Replaces the producer after a fatal error, counting against the budget; the next init backs off.</summary>
    public void ReplaceAfterFatalError(Error cause, string during)
    {
        _replacementsInARow++;
        telemetry.ProducerReplaced(during, cause, _replacementsInARow, options.MaxProducerReplacements);
        producer.Replace();
        Volatile.Write(ref _brokenBy, null);
        _backoffBeforeInit = _replacementsInARow > 1
            ? RetryBackoff.DelayBefore(options.Retry, _replacementsInARow, Random.Shared.NextDouble())
            : TimeSpan.Zero;
    }

    /// <summary>Replaces the producer to settle a commit whose outcome is unknown: no fatal error, nothing counted.</summary>
    public void ReplaceToSettle()
    {
        producer.Replace();
        Volatile.Write(ref _brokenBy, null);
        _backoffBeforeInit = TimeSpan.Zero;
    }

    /// <summary>ResetAsync: a new producer and a fresh budget.</summary>
    public void ReplaceForReset()
    {
        ReplaceToSettle();
        _replacementsInARow = 0;
    }

    /// <summary>A transaction completed (committed or aborted): the budget of replacements in a row starts over.</summary>
    public void TransactionCompleted() => _replacementsInARow = 0;

    public void InitBackoffServed() => _backoffBeforeInit = TimeSpan.Zero;

    /// <summary>The unit ended (fenced or faulted): the broken mark no longer applies.</summary>
    public void Ended() => Volatile.Write(ref _brokenBy, null);
}
