using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using KafkaTx.Clients;
using KafkaTx.Retry;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.UnitOfWork;

/// <summary>The exceptions the unit throws: each names the operation, the transactional.id, the kind and what to do.</summary>
internal sealed partial class TransactionalUnitOfWork
{
    private static TransactionErrorKind KindOf(List<DeliveryFailure> failures)
    {
        var kind = TransactionErrorKind.Abortable;
        foreach (var failure in failures)
        {
            kind = Worst(kind, TransactionErrorClassifier.Classify(failure.Error));
        }

        return kind;
    }

    /// <summary>The kind whose reaction is the more drastic: fencing beats a fatal error, which beats a rejection, and so on.</summary>
    private static TransactionErrorKind Worst(TransactionErrorKind a, TransactionErrorKind b) => Severity(a) >= Severity(b) ? a : b;

    private static int Severity(TransactionErrorKind kind) => kind switch
    {
        TransactionErrorKind.Fenced => 5,
        TransactionErrorKind.Fatal => 4,
        TransactionErrorKind.OutcomeUnknown => 3,
        TransactionErrorKind.Rejected => 2,
        TransactionErrorKind.Abortable => 1,
        _ => 0,
    };

    private KafkaTransactionException DeliveryFailed(TransactionErrorKind kind, Error error, Exception? inner, List<DeliveryFailure> failures)
    {
        if (kind == TransactionErrorKind.Fenced || State is TransactionState.Faulted or TransactionState.Fenced)
        {
            // A record failed because the producer itself is finished (e.g. fenced by a newer epoch).
            var terminal = EnterTerminalFailure(kind == TransactionErrorKind.Fenced ? kind : TransactionErrorKind.Fatal, inner as KafkaException ?? new KafkaException(error), "A record of the transaction failed");
            return new KafkaTransactionException(terminal.Kind, terminal.Error, terminal.Message, State, inner) { FailedDeliveries = failures, TransactionalId = TransactionalId, Attempts = _attempt };
        }

        // A record that failed with a fatal error (a lost sequence, say) broke the producer, which the abort replaced:
        // for the caller the transaction simply failed.
        if (kind == TransactionErrorKind.Fatal)
        {
            kind = TransactionErrorKind.Abortable;
        }

        var where = failures.Count == 0
            ? "no delivery report named a record"
            : string.Join("; ", failures.GroupBy(f => f.TopicPartition).Select(g => $"{g.Key} ({g.Count()} record(s): {g.First().Error.Code}, {g.First().Error.Reason})"));
        var message = $"The transaction of '{TransactionalId}' could not commit and was aborted; nothing in it is visible. Failed: {where}. Cause: {error.Code} ({error.Reason}). " + Advice(kind);
        _instrumentation.Failures.Add(1, _producerTag, new KeyValuePair<string, object?>("kafkatx.error.kind", kind.ToString()));
        return new KafkaTransactionException(kind, failures.Count > 0 ? failures[0].Error : error, message, State, inner)
        {
            FailedDeliveries = failures,
            TransactionalId = TransactionalId,
            Attempts = _attempt,
        };
    }

    private static string Advice(TransactionErrorKind kind) => kind switch
    {
        TransactionErrorKind.Rejected => "Retrying will not help: fix the record (size, topic name) or the permissions.",
        TransactionErrorKind.Abortable => "The work may run again in a new transaction.",
        TransactionErrorKind.Retriable => "The same call may be made again.",
        _ => string.Empty,
    };

    private KafkaTransactionException Failure(TransactionErrorKind kind, KafkaException cause, string message) =>
        Failure(kind, cause.Error, cause, message);

    private KafkaTransactionException Failure(TransactionErrorKind kind, Error error, Exception? inner, string message)
    {
        _instrumentation.Failures.Add(1, _producerTag, new KeyValuePair<string, object?>("kafkatx.error.kind", kind.ToString()));
        return new KafkaTransactionException(kind, error, message, State, inner) { TransactionalId = TransactionalId, Attempts = _attempt };
    }

    /// <summary>Moves to Fenced (disposing the producer) or Faulted, logs, and returns the exception to throw.</summary>
    private KafkaTransactionException EnterTerminalFailure(TransactionErrorKind kind, KafkaException cause, string what)
    {
        if (cause is KafkaTransactionException existing && existing.Kind == kind && State is TransactionState.Fenced or TransactionState.Faulted)
        {
            return existing;
        }

        _brokenBy = null;
        if (kind == TransactionErrorKind.Fenced)
        {
            TransitionTo(TransactionState.Fenced);
            _instrumentation.Fenced.Add(1, _producerTag);
            Log.Fenced(_logger, TransactionalId, cause);
            _producer.Dispose();
            return EndedByTerminalFailure("fenced", Failure(kind, cause,
                $"{what}: producer '{TransactionalId}' was fenced by a newer instance with the same transactional.id ({cause.Error.Code}: {cause.Error.Reason}). This instance is a zombie and has stopped; its open transaction is aborted by the coordinator. Never retry. If this was not a restart of this instance, two instances share one transactional.id: give each a unique, stable InstanceId (docs/transactional-id.md)."));
        }

        TransitionTo(TransactionState.Faulted);
        _instrumentation.Faulted.Add(1, _producerTag);
        Log.Faulted(_logger, TransactionalId, cause);
        var hint = cause.Error.Code switch
        {
            ErrorCode.TransactionalIdAuthorizationFailed or ErrorCode.ClusterAuthorizationFailed =>
                " The principal lacks Write and Describe on the TransactionalId resource: fix the ACLs, then ResetAsync.",
            _ when _options.MaxProducerReplacements > 0 && _replacementsInARow >= _options.MaxProducerReplacements =>
                $" The producer was already replaced {_replacementsInARow} times in a row (MaxProducerReplacements) without a transaction completing. Call ResetAsync once the cause is fixed, or create a new unit.",
            _ => " Call ResetAsync (or create a new unit): the new producer's InitTransactions aborts the pending transaction, and the work can run again.",
        };
        return EndedByTerminalFailure("faulted", Failure(TransactionErrorKind.Fatal, cause, $"{what}: producer '{TransactionalId}' hit a fatal error {cause.Error.Code} ({cause.Error.Reason}) and can no longer be used.{hint}"));
    }

    private KafkaTransactionException EndedByTerminalFailure(string outcome, KafkaTransactionException failure)
    {
        EndTransactionActivity(outcome, error: failure);
        return failure;
    }

    private InvalidOperationException InvalidState(string operation, TransactionState state, string? hint) =>
        new($"{operation} is not valid in state {state} (transactional.id '{TransactionalId}').{(hint is null ? string.Empty : " " + hint)}");

    private static string DescribeAbortReason(Exception failure, CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? "cancelled" : $"the work failed with {failure.GetType().Name}";
}
