using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaTx.Retry;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// ExecuteAsync's attempts: prepare, begin, run the work, commit; after a failure, abort and, when the failure is
/// abortable and attempts are left, run the work again after a backoff. The attempts run holding the unit's gate.
/// </summary>
/// <remarks>The gate is taken here, in the same method as the attempts: an async layer more costs an allocation per transaction.</remarks>
internal sealed class ExecuteLoop(UnitParts unit, TransactionOrchestrator orchestrator, SemaphoreSlim gate, CallGuards guards)
{
    public async Task<TResult> RunAsync<TResult>(ITransactionScope scope, Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        guards.ThrowIfTerminal(TransactionCall.Execute);
        guards.ThrowIfDisposing(TransactionCall.Execute);
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // A caller queued while Dispose began is refused here, before its transaction.
            guards.Enter(TransactionCall.Execute);
        }
        catch
        {
            gate.Release();
            throw;
        }

        unit.Lifecycle.Own(TransactionOwner.Execute);
        try
        {
            var maxAttempts = unit.Options.Retry.MaxAttempts;
            for (var attempt = 1; ; attempt++)
            {
                unit.Transaction.StartAttempt(attempt);
                cancellationToken.ThrowIfCancellationRequested();
                await orchestrator.PrepareForTransactionAsync(cancellationToken).ConfigureAwait(false);
                TResult result;
                try
                {
                    orchestrator.Begin(cancellationToken);
                    result = await RunWorkAsync(scope, work, cancellationToken).ConfigureAwait(false);

                    // The last moment cancellation aborts: from here on the commit is sent and runs to its outcome.
                    cancellationToken.ThrowIfCancellationRequested();

                    // Disposed while the work ran (Dispose gave up waiting for it): the producer is no longer this call's.
                    var ended = unit.State;
                    if (TransactionTransitions.TerminalRefusal(nameof(ITransactionalUnitOfWork.ExecuteAsync), ended, unit.TransactionalId, unit.Lifecycle.CauseOf(ended)) is { } refusal)
                    {
                        throw refusal;
                    }
                }
                catch (Exception failure)
                {
                    var kind = await AbortAfterWorkFailureAsync(failure, cancellationToken).ConfigureAwait(false);
                    if (CanRunAgain(kind, attempt, maxAttempts, cancellationToken))
                    {
                        await DelayBeforeRetryAsync(kind, attempt + 1, maxAttempts, failure, cancellationToken).ConfigureAwait(false);
                        continue;
                    }

                    ExceptionDispatchInfo.Capture(failure).Throw();
                    throw; // unreachable: Throw() always throws
                }

                try
                {
                    var committed = await orchestrator.CommitAsync(CancellationToken.None).ConfigureAwait(false);
                    committed.ThrowIfNotCommitted();
                    return result;
                }
                catch (KafkaTransactionException e) when (CanRunAgain(e.Kind, attempt, maxAttempts, cancellationToken))
                {
                    // The commit failed and the transaction was aborted: run the work again.
                    await DelayBeforeRetryAsync(e.Kind, attempt + 1, maxAttempts, e, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            unit.Transaction.EndAttempts();
            unit.Lifecycle.Disown();
            unit.Transaction.ForgetCancellation();
            guards.Exit();
            gate.Release();
        }
    }

    /// <summary>
    /// Runs the work with the transaction's span as the current activity, so that the work's own spans and the
    /// records it writes belong to it. Only this flow sees the change; the caller's context is left as it was.
    /// </summary>
    private async ValueTask<TResult> RunWorkAsync<TResult>(ITransactionScope scope, Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken)
    {
        if (unit.Telemetry.Span is { } span)
        {
            Activity.Current = span;
        }

        return await work(scope, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Aborts after the work failed, and returns the failure's kind (null for an application exception).</summary>
    private async Task<TransactionErrorKind?> AbortAfterWorkFailureAsync(Exception failure, CancellationToken cancellationToken)
    {
        if (failure is not KafkaTransactionException)
        {
            unit.Telemetry.Error(failure); // the unit's own exceptions were traced where their cause arose
        }

        var kind = failure is OperationCanceledException ? null : TransactionErrorClassifier.Classify(failure);
        if (kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal)
        {
            if (failure is KafkaTransactionException)
            {
                return kind; // already handled where it was raised
            }

            throw orchestrator.Terminate(kind.Value, (KafkaException)failure, "The transactional work failed");
        }

        if (unit.State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            try
            {
                // Abort even when cancelled: an open transaction holds back every read_committed consumer. A fatal
                // abort replaces the producer instead, and the work's own failure is what the caller sees.
                await orchestrator.AbortAsync(DescribeAbortReason(failure, cancellationToken), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception abortFailure) when (abortFailure is KafkaException or OperationCanceledException)
            {
                unit.Telemetry.CleanupAbortFailed(failure);
                throw;
            }
        }

        return kind;
    }

    /// <summary>Whether the work runs again: an abortable failure, attempts left, not cancelled, and not being disposed.</summary>
    private bool CanRunAgain(TransactionErrorKind? kind, int attempt, int maxAttempts, CancellationToken cancellationToken) =>
        kind is TransactionErrorKind.Abortable or TransactionErrorKind.Retriable
        && attempt < maxAttempts
        && !cancellationToken.IsCancellationRequested
        && !unit.Calls.IsDisposing;

    private async Task DelayBeforeRetryAsync(TransactionErrorKind? kind, int nextAttempt, int maxAttempts, Exception failure, CancellationToken cancellationToken)
    {
        var delay = RetryBackoff.DelayBefore(unit.Options.Retry, nextAttempt, Random.Shared.NextDouble());
        unit.Telemetry.WorkRetrying(kind, nextAttempt, maxAttempts, delay, failure);
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, unit.Time, cancellationToken).ConfigureAwait(false);
        }
    }

    private static string DescribeAbortReason(Exception failure, CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? "cancelled" : $"the work failed with {failure.GetType().Name}";
}
