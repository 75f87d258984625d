using System.Diagnostics;
using Confluent.Kafka;
using KafkaTx.Telemetry;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// The span of each Kafka transaction (begin to commit or abort), its events, and the trace context written into the
/// records it produces. With no listener on the KafkaTx source none of this allocates: there is no span, and a record
/// gets trace headers only when the application itself has an activity current.
/// </summary>
internal sealed partial class TransactionalUnitOfWork
{
    /// <summary>The span of the open transaction; null when nobody listens.</summary>
    private Activity? _transactionActivity;

    private void StartTransactionActivity()
    {
        var source = _instrumentation.ActivitySource;
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
        activity.SetTag("kafkatx.transactional_id", TransactionalId);
        activity.SetTag(_producerTag.Key, _producerTag.Value);
        activity.SetTag("kafkatx.attempt", _attempt);
        activity.AddEvent(new ActivityEvent("kafkatx.begin"));
        _transactionActivity = activity;
    }

    private void TraceOffsetsSent(int partitions) =>
        _transactionActivity?.AddEvent(new ActivityEvent("kafkatx.send_offsets", tags: new ActivityTagsCollection
        {
            ["kafkatx.offsets.partitions"] = partitions,
        }));

    /// <summary>Records a failure where it happened, as an exception event on the transaction's span.</summary>
    private void TraceError(Exception failure)
    {
        if (_transactionActivity is not { } activity)
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

    /// <summary>Records a record's failed delivery, which has no exception of its own.</summary>
    private void TraceError(Error error)
    {
        if (_transactionActivity is not null)
        {
            TraceError(new KafkaException(error));
        }
    }

    /// <summary>Ends the transaction's span with its outcome (committed, aborted, fenced, ...), if it has one.</summary>
    private void EndTransactionActivity(string outcome, string? abortReason = null, Exception? error = null)
    {
        var activity = _transactionActivity;
        if (activity is null)
        {
            return;
        }

        _transactionActivity = null;
        var records = Volatile.Read(ref _recordsInTransaction);
        activity.AddEvent(new ActivityEvent(outcome == "committed" ? "kafkatx.commit" : "kafkatx.abort", tags: abortReason is null ? null : new ActivityTagsCollection
        {
            ["kafkatx.abort.reason"] = abortReason,
        }));
        activity.SetTag("kafkatx.transaction.outcome", outcome);
        activity.SetTag("kafkatx.transaction.records", records);
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
    private Headers? WithTraceContext(Headers? headers)
    {
        var context = Activity.Current ?? _transactionActivity;
        return context is null ? headers : TraceContextHeaders.Inject(context, headers);
    }
}
