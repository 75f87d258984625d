using System.Diagnostics;
using Confluent.Kafka;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// Every event of a unit of work, one call each: the span of the transaction (begin to commit or abort) and its events,
/// the metrics, and the log line. With no listener on the KafkaTx source the span costs nothing: there is none, and a
/// record gets trace headers only when the application itself has an activity current.
/// </summary>
internal sealed class UnitTelemetry(
    string transactionalId,
    KeyValuePair<string, object?> producerTag,
    KafkaTxInstrumentation instrumentation,
    ILogger logger,
    OpenTransaction transaction)
{
    /// <summary>The span of the open transaction; null when nobody listens.</summary>
    private Activity? _span;

    public ILogger Logger => logger;

    /// <summary>The span of the open transaction, if anyone listens.</summary>
    public Activity? Span => _span;

    // ---------------------------------------------------------------- the transaction's span

    public void TransactionStarted()
    {
        var source = instrumentation.ActivitySource;
        if (!source.HasListeners())
        {
            return;
        }

        // The span is not left as the ambient activity: an explicit transaction begins in one call and ends in
        // another, so the caller's Activity.Current would otherwise point at a stopped span. ExecuteAsync makes it
        // current around the work instead.
        var ambient = Activity.Current;
        var activity = source.StartActivity(KafkaTxInstrumentation.TransactionSpan, ActivityKind.Producer);
        Activity.Current = ambient;
        if (activity is null)
        {
            return;
        }

        activity.SetTag(KafkaTxInstrumentation.MessagingSystemTag, KafkaTxInstrumentation.MessagingSystem);
        activity.SetTag("kafkatx.transactional_id", transactionalId);
        activity.SetTag(producerTag.Key, producerTag.Value);
        activity.SetTag("kafkatx.attempt", transaction.Attempt);
        activity.AddEvent(new ActivityEvent("kafkatx.begin"));
        _span = activity;
    }

    public void OffsetsSent(int partitions) =>
        _span?.AddEvent(new ActivityEvent("kafkatx.send_offsets", tags: new ActivityTagsCollection
        {
            ["kafkatx.offsets.partitions"] = partitions,
        }));

    /// <summary>A failure where it happened, as an exception event on the transaction's span.</summary>
    public void Error(Exception failure)
    {
        if (_span is not { } activity)
        {
            return;
        }

        var kind = failure is OperationCanceledException ? "Cancelled" : TransactionErrorClassifier.Classify(failure)?.ToString() ?? "Application";
        var tags = new TagList { { "kafkatx.error.kind", kind } };
        if (failure is KafkaException kafka)
        {
            tags.Add("kafkatx.error.code", kafka.Error.Code.ToString());
        }

        activity.AddException(failure, tags);
    }

    /// <summary>A record's failed delivery, which has no exception of its own.</summary>
    public void Error(Error error)
    {
        if (_span is not null)
        {
            Error(new KafkaException(error));
        }
    }

    /// <summary>Ends the transaction's span with its outcome (committed, aborted, fenced, ...), if it has one.</summary>
    public void SpanEnded(string outcome, string? abortReason = null, Exception? error = null)
    {
        var activity = _span;
        if (activity is null)
        {
            return;
        }

        _span = null;
        activity.AddEvent(new ActivityEvent(outcome == "committed" ? "kafkatx.commit" : "kafkatx.abort", tags: abortReason is null ? null : new ActivityTagsCollection
        {
            ["kafkatx.abort.reason"] = abortReason,
        }));
        activity.SetTag("kafkatx.transaction.outcome", outcome);
        activity.SetTag("kafkatx.transaction.records", transaction.Records);
        if (error is not null || outcome is not ("committed" or "aborted"))
        {
            activity.SetStatus(ActivityStatusCode.Error, error?.Message ?? outcome);
        }

        activity.Stop();
    }

    /// <summary>
    /// The headers a record is produced with: the caller's, plus the trace context of the current activity (the
    /// caller's span, the processor's record span, ExecuteAsync's transaction span) or else of the transaction.
    /// </summary>
    public Headers? WithTraceContext(Headers? headers)
    {
        var context = Activity.Current ?? _span;
        return context is null ? headers : TraceContextHeaders.Inject(context, headers);
    }

    // ---------------------------------------------------------------- outcomes

    public void Committed(int records, TimeSpan elapsed)
    {
        instrumentation.Commits.Add(1, producerTag);
        instrumentation.RecordsCommitted.Add(records, producerTag);
        instrumentation.RecordsPerTransaction.Record(records, producerTag);
        instrumentation.CommitDuration.Record(elapsed.TotalSeconds, producerTag);
        TransactionDuration("committed");
        SpanEnded("committed");
        Log.Committed(logger, transactionalId, records, (long)elapsed.TotalMilliseconds);
    }

    /// <summary>What every abort records, however it was done: the count, the duration, the span's end, the log line.</summary>
    public void Aborted(string reason)
    {
        instrumentation.Aborts.Add(1, producerTag);
        TransactionDuration("aborted");
        SpanEnded("aborted", reason);
        Log.Aborted(logger, transactionalId, reason);
    }

    public void CommitOutcomeUnknown(Exception cause) => Log.CommitOutcomeUnknown(logger, transactionalId, cause);

    /// <summary>A failure the unit throws, counted once by the code that throws it.</summary>
    public KafkaTransactionException Failed(KafkaTransactionException failure)
    {
        instrumentation.Failures.Add(1, producerTag, new KeyValuePair<string, object?>("kafkatx.error.kind", failure.Kind.ToString()));
        return failure;
    }

    public void Fenced(KafkaException cause)
    {
        instrumentation.Fenced.Add(1, producerTag);
        Log.Fenced(logger, transactionalId, cause);
    }

    public void Faulted(KafkaException cause)
    {
        instrumentation.Faulted.Add(1, producerTag);
        Log.Faulted(logger, transactionalId, cause);
    }

    public void ProducerReplaced(string during, Error cause, int replacementsInARow, int maxReplacements)
    {
        Log.ReplacingProducer(logger, transactionalId, during, cause.Code, cause.Reason, replacementsInARow, maxReplacements);
        instrumentation.ProducerReplacements.Add(1, producerTag, new KeyValuePair<string, object?>("kafkatx.operation", during));
    }

    public void WorkRetrying(TransactionErrorKind? kind, int nextAttempt, int maxAttempts, TimeSpan delay, Exception failure)
    {
        Log.RetryingWork(logger, transactionalId, kind, nextAttempt, maxAttempts, (long)delay.TotalMilliseconds, failure);
        instrumentation.WorkRetries.Add(1, producerTag);
    }

    // ---------------------------------------------------------------- log-only events

    public void Initializing() => Log.Initializing(logger, transactionalId);

    public void Initialized(TimeSpan elapsed) => Log.Initialized(logger, transactionalId, (long)elapsed.TotalMilliseconds);

    public void TransactionExpired(TimeSpan age, TimeSpan timeout) => Log.TransactionExpired(logger, transactionalId, (long)age.TotalMilliseconds, (long)timeout.TotalMilliseconds);

    public void SettlingPendingCommit(string operation) => Log.SettlingPendingCommit(logger, transactionalId, operation);

    public void PendingCommitSettled(string outcome) => Log.PendingCommitSettled(logger, transactionalId, outcome);

    public void SettlingByReplacingProducer(Exception cause) => Log.SettlingByReplacingProducer(logger, transactionalId, cause);

    public void ReplacementNotInitialized(TransactionState state, Exception cause) => Log.ReplacementNotInitialized(logger, transactionalId, state, cause);

    public void CleanupAbortFailed(Exception originalFailure) => Log.CleanupAbortFailed(logger, transactionalId, originalFailure);

    public void Resetting(TransactionState state) => Log.Resetting(logger, transactionalId, state);

    public void DisposeWaiting(TimeSpan bound) => Log.DisposeWaiting(logger, transactionalId, (long)bound.TotalMilliseconds);

    public void DisposeGaveUpWaiting(TimeSpan bound) => Log.DisposeGaveUpWaiting(logger, transactionalId, (long)bound.TotalMilliseconds);

    public void DisposingOpenTransaction() => Log.DisposingOpenTransaction(logger, transactionalId);

    public void DisposeAbortFailed(Exception cause) => Log.DisposeAbortFailed(logger, transactionalId, cause);

    private void TransactionDuration(string outcome) =>
        instrumentation.TransactionDuration.Record(
            transaction.Age.TotalSeconds,
            producerTag,
            new KeyValuePair<string, object?>("kafkatx.transaction.outcome", outcome));
}
