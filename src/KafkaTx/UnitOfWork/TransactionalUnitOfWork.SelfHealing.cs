using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaTx.Clients;
using KafkaTx.Retry;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// Self-healing: a fatal error that is not fencing replaces the producer instead of ending the unit. The new producer's
/// InitTransactions aborts whatever the old one left open, so nothing of the failed transaction becomes visible.
/// </summary>
internal sealed partial class TransactionalUnitOfWork
{
    /// <summary>Whether a fatal error may be healed by a new producer: not an authorization failure, and within the budget.</summary>
    private bool CanReplaceProducer(Error error) =>
        error.Code is not (ErrorCode.TransactionalIdAuthorizationFailed or ErrorCode.ClusterAuthorizationFailed)
        && _replacementsInARow < _options.MaxProducerReplacements;

    /// <summary>
    /// A fatal error hit the open transaction (produce, send offsets). The transaction can only be aborted now, which
    /// replaces the producer; the caller sees an abortable failure. Returns the exception to throw.
    /// </summary>
    private KafkaTransactionException MarkBroken(KafkaException cause, string what)
    {
        if (!CanReplaceProducer(cause.Error))
        {
            return EnterTerminalFailure(TransactionErrorKind.Fatal, cause, $"{what} failed");
        }

        _brokenBy ??= cause;
        return Failure(TransactionErrorKind.Abortable, cause,
            $"{what} in the transaction of '{TransactionalId}' failed: the producer hit a fatal error {cause.Error.Code} ({cause.Error.Reason}). Abort the transaction (ExecuteAsync does so): the producer is replaced, nothing in the transaction becomes visible, and the work may run again.");
    }

    private void ThrowIfBroken(string operation)
    {
        if (_brokenBy is { } broken)
        {
            throw Failure(TransactionErrorKind.Abortable, broken.Error, broken,
                $"{operation} is refused: the producer of '{TransactionalId}' hit a fatal error {broken.Error.Code} ({broken.Error.Reason}) in this transaction. Abort it (ExecuteAsync does so); the producer is then replaced.");
        }
    }

    private void ReplaceProducer(Error cause, string during)
    {
        _replacementsInARow++;
        Log.ReplacingProducer(_logger, TransactionalId, during, cause.Code, cause.Reason, _replacementsInARow, _options.MaxProducerReplacements);
        _instrumentation.ProducerReplacements.Add(1, _producerTag, new KeyValuePair<string, object?>("kafkatx.operation", during));
        _producer.Replace();
        _brokenBy = null;
        _backoffBeforeInit = _replacementsInARow > 1
            ? RetryBackoff.DelayBefore(_options.Retry, _replacementsInARow, Random.Shared.NextDouble())
            : TimeSpan.Zero;
        TransitionTo(TransactionState.Uninitialized);
    }

    /// <summary>Initializes a replacement producer at once, so that the unit is ready again; a failure leaves the state to say what is next.</summary>
    private async Task InitializeReplacementAsync()
    {
        if (Volatile.Read(ref _disposing) == 1)
        {
            return; // the unit is being disposed: the new producer is closed with it, never initialized
        }

        try
        {
            await InitializeCoreAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (KafkaTransactionException e)
        {
            // Uninitialized (the next use initializes), Fenced or Faulted: the caller still gets the original failure.
            Log.ReplacementNotInitialized(_logger, TransactionalId, State, e);
        }
    }
}
