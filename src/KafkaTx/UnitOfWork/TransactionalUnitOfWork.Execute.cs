using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaTx.Clients;
using KafkaTx.Retry;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.UnitOfWork;

/// <summary>ExecuteAsync: begin, run the work, commit, and the reaction to each kind of failure, retries included.</summary>
internal sealed partial class TransactionalUnitOfWork
{
    public Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default) =>
        ExecuteAsync(WithResult(work), cancellationToken);

    /// <summary>Work without a result as work with one, so that one ExecuteAsync serves both (the pool's too).</summary>
    internal static Func<ITransactionScope, CancellationToken, ValueTask<bool>> WithResult(Func<ITransactionScope, CancellationToken, ValueTask> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        return async (scope, ct) =>
        {
            await work(scope, ct).ConfigureAwait(false);
            return true;
        };
    }

    public async Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        ThrowIfTerminal(nameof(ExecuteAsync));
        ThrowIfDisposing(nameof(ExecuteAsync));
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // A caller queued while Dispose began is refused here, before its transaction.
            EnterCall(nameof(ExecuteAsync));
        }
        catch
        {
            _gate.Release();
            throw;
        }

        _executing = true;
        try
        {
            var maxAttempts = _options.Retry.MaxAttempts;
            for (var attempt = 1; ; attempt++)
            {
                _attempt = attempt;
                cancellationToken.ThrowIfCancellationRequested();
                await PrepareForTransactionAsync(cancellationToken).ConfigureAwait(false);
                TResult result;
                try
                {
                    BeginCore(cancellationToken);
                    result = await RunWorkAsync(work, cancellationToken).ConfigureAwait(false);

                    // The last moment cancellation aborts: from here on the commit is sent and runs to its outcome.
                    cancellationToken.ThrowIfCancellationRequested();

                    // Disposed while the work ran (Dispose gave up waiting for it): the producer is no longer this call's.
                    ThrowIfTerminal(nameof(ExecuteAsync));
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
                    await CommitCoreAsync(CancellationToken.None).ConfigureAwait(false);
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
            _attempt = 1;
            _executing = false;
            _transactionCancellation = default;
            ExitCall();
            _gate.Release();
        }
    }

    /// <summary>
    /// Runs the work with the transaction's span as the current activity, so that the work's own spans and the
    /// records it writes belong to it. Only this flow sees the change; the caller's context is left as it was.
    /// </summary>
    private async ValueTask<TResult> RunWorkAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken)
    {
        if (_transactionActivity is { } span)
        {
            Activity.Current = span;
        }

        return await work(this, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Makes the unit ready for a new transaction: settles a commit whose outcome was left unknown, finishes an abort
    /// that timed out earlier, initializes the producer.
    /// </summary>
    private async Task PrepareForTransactionAsync(CancellationToken cancellationToken)
    {
        if (State == TransactionState.Committing)
        {
            await SettlePendingCommitAsync(nameof(ExecuteAsync), cancellationToken).ConfigureAwait(false);
        }

        if (State == TransactionState.Aborting)
        {
            await AbortCoreAsync("resuming an abort that did not complete earlier", cancellationToken).ConfigureAwait(false);
        }

        if (State == TransactionState.Uninitialized)
        {
            await InitializeCoreAsync(cancellationToken).ConfigureAwait(false); // first use, or a replaced producer
        }

        var state = State;
        if (state != TransactionState.Ready)
        {
            ThrowIfTerminal(nameof(ExecuteAsync));
            throw InvalidState(nameof(ExecuteAsync), state, NextStep(state));
        }
    }

    /// <summary>
    /// Settles a commit whose outcome was left unknown (state Committing, no call running it): resumes it, and if its
    /// outcome is still unknown, replaces the producer, whose InitTransactions completes or aborts it. Leaves the unit
    /// Ready, or Uninitialized when the new producer could not initialize yet (the next call initializes it). Run by
    /// the next ExecuteAsync or InitializeAsync, so that nobody has to call anything else first.
    /// </summary>
    /// <remarks>The resumed commit ignores the caller's token, as any commit that was sent does; the new producer's
    /// InitTransactions honours it (cancelled, the unit stays Uninitialized and the next call initializes it).</remarks>
    private async Task SettlePendingCommitAsync(string operation, CancellationToken cancellationToken)
    {
        Log.SettlingPendingCommit(_logger, TransactionalId, operation);
        try
        {
            await CommitCoreAsync(CancellationToken.None).ConfigureAwait(false);
            Log.PendingCommitSettled(_logger, TransactionalId, "committed (the resumed commit completed)");
            return;
        }
        catch (KafkaTransactionException e) when (e.Kind is not (TransactionErrorKind.Fenced or TransactionErrorKind.Fatal))
        {
            if (State != TransactionState.Committing)
            {
                // The commit failed and was aborted, or a fatal error replaced the producer: settled either way.
                Log.PendingCommitSettled(_logger, TransactionalId, e.Kind == TransactionErrorKind.OutcomeUnknown
                    ? "completed or aborted by a new producer's InitTransactions after a fatal error"
                    : $"aborted ({e.Kind}: {e.Error.Code})");
                return;
            }

            Log.SettlingByReplacingProducer(_logger, TransactionalId, e);
        }

        _producer.Replace();
        _brokenBy = null;
        _backoffBeforeInit = TimeSpan.Zero;
        TransitionTo(TransactionState.Uninitialized);
        await InitializeCoreAsync(cancellationToken).ConfigureAwait(false);
        Log.PendingCommitSettled(_logger, TransactionalId, "completed or aborted by the new producer's InitTransactions (which of the two is not known)");
    }

    /// <summary>Aborts after the work failed, and returns the failure's kind (null for an application exception).</summary>
    private async Task<TransactionErrorKind?> AbortAfterWorkFailureAsync(Exception failure, CancellationToken cancellationToken)
    {
        if (failure is not KafkaTransactionException)
        {
            TraceError(failure); // the unit's own exceptions were traced where their cause arose
        }

        var kind = failure is OperationCanceledException ? null : TransactionErrorClassifier.Classify(failure);
        if (kind is TransactionErrorKind.Fenced or TransactionErrorKind.Fatal)
        {
            if (failure is KafkaTransactionException)
            {
                return kind; // already handled where it was raised
            }

            throw EnterTerminalFailure(kind.Value, (KafkaException)failure, "The transactional work failed");
        }

        if (State is TransactionState.InTransaction or TransactionState.Aborting)
        {
            try
            {
                // Abort even when cancelled: an open transaction holds back every read_committed consumer. A fatal
                // abort replaces the producer instead, and the work's own failure is what the caller sees.
                await AbortCoreAsync(DescribeAbortReason(failure, cancellationToken), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception abortFailure) when (abortFailure is KafkaException or OperationCanceledException)
            {
                Log.CleanupAbortFailed(_logger, TransactionalId, failure);
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
        && Volatile.Read(ref _disposing) == 0;

    private async Task DelayBeforeRetryAsync(TransactionErrorKind? kind, int nextAttempt, int maxAttempts, Exception failure, CancellationToken cancellationToken)
    {
        var delay = RetryBackoff.DelayBefore(_options.Retry, nextAttempt, Random.Shared.NextDouble());
        Log.RetryingWork(_logger, TransactionalId, kind, nextAttempt, maxAttempts, (long)delay.TotalMilliseconds, failure);
        _instrumentation.WorkRetries.Add(1, _producerTag);
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
        }
    }
}
