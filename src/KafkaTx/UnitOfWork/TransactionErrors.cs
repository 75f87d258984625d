using Confluent.Kafka;

namespace KafkaTx.UnitOfWork;

/// <summary>
/// The exceptions the unit throws: each names the operation, the transactional.id, the kind and what to do. Creating
/// one changes nothing: the code that throws it counts it (<see cref="UnitTelemetry.Failed"/>) and moves the state.
/// Each carries the state and the attempt of the moment it is created.
/// </summary>
internal sealed class TransactionErrors(string transactionalId, KafkaTransactionsOptions options, TransactionLifecycle lifecycle, OpenTransaction transaction)
{
    private const string WritesNotFinishedReason = "ProduceAsync not awaited before the commit";

    public KafkaTransactionException InitTimedOut(KafkaException e) => Failure(TransactionErrorKind.Retriable, e,
        $"InitTransactions for transactional.id '{transactionalId}' did not complete within InitTimeout ({options.InitTimeout}): the transaction coordinator is unavailable or still aborting an earlier transaction. Call again; librdkafka resumes the initialization.");

    public KafkaTransactionException BeginFailed(TransactionErrorKind kind, KafkaException e) =>
        Failure(kind, e, $"BeginTransaction for '{transactionalId}' failed: {e.Error.Code} ({e.Error.Reason}).");

    public KafkaTransactionException BeginFailedProducerReplaced(KafkaException e) => Failure(TransactionErrorKind.Abortable, e,
        $"BeginTransaction for '{transactionalId}' failed: the producer had hit a fatal error {e.Error.Code} ({e.Error.Reason}). Nothing was written. The producer was replaced and initializes on next use (ExecuteAsync does so; otherwise call InitializeAsync).");

    public KafkaTransactionException ProduceRefused(TransactionErrorKind kind, string topic, KafkaException e) =>
        Failure(kind, e, $"Produce to '{topic}' in the transaction of '{transactionalId}' was refused by the client: {e.Error.Code} ({e.Error.Reason}). " + Advice(kind));

    /// <summary>A serializer failed because the schema registry could not be reached or failed: the record is not at fault.</summary>
    public KafkaTransactionException RegistryUnavailable(string operation, string topic, MessageComponentType component, Exception e) => Failure(TransactionErrorKind.Retriable,
        new Error(SerializationCode(component), $"schema registry unavailable: {e.Message}"), e,
        $"{operation} to '{topic}' in the transaction of '{transactionalId}' failed: the {Part(component)} serializer could not reach the schema registry ({e.GetType().Name}: {e.Message}). The record was not written. Abort the transaction and run it again (ExecuteAsync does so per Retry).");

    /// <summary>
    /// A serializer refused the record itself (a value its schema does not allow, a schema change its subject's
    /// compatibility refuses): retrying cannot help. Nothing of the record was written.
    /// </summary>
    public KafkaTransactionException SerializationRejected(string operation, string topic, MessageComponentType component, Exception e) => Failure(TransactionErrorKind.Rejected,
        new Error(SerializationCode(component), $"{Part(component)} serializer refused the record: {e.Message}"), e,
        $"{operation} to '{topic}' in the transaction of '{transactionalId}' failed: the {Part(component)} serializer refused the record ({e.GetType().Name}: {e.Message}). The record was not written. Fix the record or its schema; retrying will not help.");

    /// <summary>Whether a commit failed because ProduceAsync calls were not awaited (<see cref="WritesNotFinishedAtCommit"/>): the handler's doing.</summary>
    public static bool IsWritesNotFinished(KafkaTransactionException e) =>
        e.Error.Code == ErrorCode.Local_State && e.Error.Reason == WritesNotFinishedReason;

    /// <summary>The commit found ProduceAsync calls not finished, or finished too late to write: it aborted instead.</summary>
    public KafkaTransactionException WritesNotFinishedAtCommit(int inFlight, int refused) => Failure(TransactionErrorKind.Abortable,
        new Error(ErrorCode.Local_State, WritesNotFinishedReason), null,
        $"The transaction of '{transactionalId}' was aborted instead of committed, and nothing in it is visible: " +
        (inFlight > 0 ? $"{inFlight} ProduceAsync call(s) still in flight: await every ProduceAsync before the transaction commits" : string.Empty) +
        (inFlight > 0 && refused > 0 ? "; and " : string.Empty) +
        (refused > 0 ? $"{refused} ProduceAsync call(s) finished after their handler call had returned, and their records were refused: await every ProduceAsync before the handler returns" : string.Empty) +
        ". " + Advice(TransactionErrorKind.Abortable));

    public KafkaTransactionException SendOffsetsFailed(TransactionErrorKind kind, int partitions, KafkaException e) =>
        Failure(kind == TransactionErrorKind.Retriable ? TransactionErrorKind.Abortable : kind, e,
            $"SendOffsetsToTransaction for {partitions} partition(s) in the transaction of '{transactionalId}' failed: {e.Error.Code} ({e.Error.Reason}). Abort the transaction; the consumer must rewind to its committed offsets.");

    /// <summary>A fatal error hit the open transaction; the producer is replaced when it is aborted.</summary>
    public KafkaTransactionException Broke(string what, KafkaException cause) => Failure(TransactionErrorKind.Abortable, cause,
        $"{what} in the transaction of '{transactionalId}' failed: the producer hit a fatal error {cause.Error.Code} ({cause.Error.Reason}). Abort the transaction (ExecuteAsync does so): the producer is replaced, nothing in the transaction becomes visible, and the work may run again.");

    /// <summary>A call of a transaction whose producer broke earlier in it.</summary>
    public KafkaTransactionException Broken(string operation, KafkaException broken) => Failure(TransactionErrorKind.Abortable, broken.Error, broken,
        $"{operation} is refused: the producer of '{transactionalId}' hit a fatal error {broken.Error.Code} ({broken.Error.Reason}) in this transaction. Abort it (ExecuteAsync does so); the producer is then replaced.");

    public KafkaTransactionException Expired(string operation, TimeSpan age) => Failure(TransactionErrorKind.Abortable, TimedOut, null,
        $"{operation}: the transaction of '{transactionalId}' has been open for {age.TotalMilliseconds:F0} ms, not below TransactionTimeout ({options.TransactionTimeout.TotalMilliseconds:F0} ms); the broker aborts it. Abort it and start again with less work per transaction.");

    /// <summary>ProduceAsync with an asynchronous serializer, when the work before it had used up the transaction's time: no serde is waited for then.</summary>
    public KafkaTransactionException TooLateToSerialize(string topic, TimeSpan age) => Failure(TransactionErrorKind.Abortable, TimedOut, null,
        $"ProduceAsync to '{topic}' in the transaction of '{transactionalId}' was refused: the transaction has been open for {age.TotalMilliseconds:F0} ms, into the last part of TransactionTimeout (transaction.timeout.ms = {options.TransactionTimeout.TotalMilliseconds:F0} ms) that its commit needs, before the record was even serialized. The work before this write is too slow for one transaction (not the schema registry). Abort it and make the work shorter, or raise TransactionTimeout.");

    public KafkaTransactionException ExpiredAtCommit(TimeSpan age) => Failure(TransactionErrorKind.Abortable, TimedOut, null,
        $"The transaction of '{transactionalId}' was open for {age.TotalMilliseconds:F0} ms, too close to TransactionTimeout (transaction.timeout.ms = {options.TransactionTimeout.TotalMilliseconds:F0} ms) for its commit to reach the broker before the broker may abort it for its age (the last tenth, at most 5 s, is kept for the commit). It was aborted instead of committed and nothing in it is visible. Make the work shorter (fewer records per transaction) or raise TransactionTimeout.");

    public KafkaTransactionException BrokenAtCommit(KafkaException broken) => Failure(TransactionErrorKind.Abortable, broken.Error, broken,
        $"The transaction of '{transactionalId}' could not commit: its producer hit a fatal error {broken.Error.Code} ({broken.Error.Reason}). The producer was replaced, nothing in the transaction is visible, and the work may run again.");

    public KafkaTransactionException CommitTimedOut(KafkaException e) => Failure(TransactionErrorKind.OutcomeUnknown, e,
        $"The commit of '{transactionalId}' did not complete within CommitTimeout ({options.CommitTimeout}); last error {e.Error.Code} ({e.Error.Reason}). Its outcome is unknown and it is not treated as committed, nor run again. " + TransactionTransitions.PendingCommitNextStep);

    public KafkaTransactionException CommitFatalAfterSent(KafkaException e) => Failure(TransactionErrorKind.OutcomeUnknown, e,
        $"The commit of '{transactionalId}' failed with a fatal error {e.Error.Code} ({e.Error.Reason}) after it was sent, so whether it took effect is unknown; it is not treated as committed and the work is not run again. The producer was replaced: its InitTransactions completed or aborted the transaction, and the unit is usable. Check the output (read_committed) before doing the work again.");

    public KafkaTransactionException AbortTimedOut(KafkaException e) => Failure(TransactionErrorKind.Retriable, e,
        $"Aborting the transaction of '{transactionalId}' did not complete within AbortTimeout ({options.AbortTimeout}): {e.Error.Code} ({e.Error.Reason}). Nothing in it is visible. Call AbortAsync again (ExecuteAsync does so before its next transaction), or dispose: the broker aborts it after transaction.timeout.ms, and a new producer with this transactional.id aborts it at once.");

    public KafkaTransactionException Fenced(string what, KafkaException cause, TransactionOutcome outcome) => Failure(TransactionErrorKind.Fenced, cause, outcome,
        $"{what}: producer '{transactionalId}' was fenced by a newer instance with the same transactional.id ({cause.Error.Code}: {cause.Error.Reason}). This instance is a zombie and has stopped; {(outcome == TransactionOutcome.Unknown ? "the commit was sent before the fencing, so it may have taken effect: check the output (read_committed) before doing the work again" : "its open transaction is aborted by the coordinator")}. Never retry. If this was not a restart of this instance, two instances share one transactional.id: give each a unique, stable InstanceId (docs/transactional-id.md).");

    public KafkaTransactionException Faulted(string what, KafkaException cause, int replacementsInARow, TransactionOutcome outcome)
    {
        var hint = cause.Error.Code switch
        {
            ErrorCode.TransactionalIdAuthorizationFailed or ErrorCode.ClusterAuthorizationFailed =>
                " The principal lacks Write and Describe on the TransactionalId resource: fix the ACLs, then ResetAsync.",
            _ when options.MaxProducerReplacements > 0 && replacementsInARow >= options.MaxProducerReplacements =>
                $" The producer was already replaced {replacementsInARow} times in a row (MaxProducerReplacements) without a transaction completing. Call ResetAsync once the cause is fixed, or create a new unit.",
            _ => " Call ResetAsync (or create a new unit): the new producer's InitTransactions aborts the pending transaction, and the work can run again.",
        };
        return Failure(TransactionErrorKind.Fatal, cause, outcome, $"{what}: producer '{transactionalId}' hit a fatal error {cause.Error.Code} ({cause.Error.Reason}) and can no longer be used.{hint}");
    }

    /// <summary>A terminal failure that also names the records that failed.</summary>
    public KafkaTransactionException WithDeliveries(KafkaTransactionException terminal, Exception? inner, List<DeliveryFailure> failures) =>
        new(terminal.Kind, terminal.Error, terminal.Message, lifecycle.State, inner) { FailedDeliveries = failures, TransactionalId = transactionalId, Attempts = transaction.Attempt, Outcome = terminal.Outcome };

    /// <summary>The transaction could not commit because records failed; it was aborted.</summary>
    public KafkaTransactionException DeliveryFailed(TransactionErrorKind kind, Error error, Exception? inner, List<DeliveryFailure> failures)
    {
        var where = failures.Count == 0
            ? "no delivery report named a record"
            : string.Join("; ", failures.GroupBy(f => f.TopicPartition).Select(g => $"{g.Key} ({g.Count()} record(s): {g.First().Error.Code}, {g.First().Error.Reason})"));
        var message = $"The transaction of '{transactionalId}' could not commit and was aborted; nothing in it is visible. Failed: {where}. Cause: {error.Code} ({error.Reason}). " + Advice(kind);
        return new KafkaTransactionException(kind, failures.Count > 0 ? failures[0].Error : error, message, lifecycle.State, inner)
        {
            FailedDeliveries = failures,
            TransactionalId = transactionalId,
            Attempts = transaction.Attempt,
        };
    }

    /// <summary>The worst kind among the failed records' errors (Abortable when none is worse).</summary>
    public static TransactionErrorKind KindOf(List<DeliveryFailure> failures)
    {
        var kind = TransactionErrorKind.Abortable;
        foreach (var failure in failures)
        {
            kind = Worst(kind, TransactionErrorClassifier.Classify(failure.Error));
        }

        return kind;
    }

    /// <summary>The kind whose reaction is the more drastic: fencing beats a fatal error, which beats a rejection, and so on.</summary>
    public static TransactionErrorKind Worst(TransactionErrorKind a, TransactionErrorKind b) => Severity(a) >= Severity(b) ? a : b;

    private static int Severity(TransactionErrorKind kind) => kind switch
    {
        TransactionErrorKind.Fenced => 5,
        TransactionErrorKind.Fatal => 4,
        TransactionErrorKind.OutcomeUnknown => 3,
        TransactionErrorKind.Rejected => 2,
        TransactionErrorKind.Abortable => 1,
        _ => 0,
    };

    private static string Part(MessageComponentType component) => component == MessageComponentType.Key ? "key" : "value";

    private static ErrorCode SerializationCode(MessageComponentType component) =>
        component == MessageComponentType.Key ? ErrorCode.Local_KeySerialization : ErrorCode.Local_ValueSerialization;

    private static Error TimedOut => new(ErrorCode.Local_TimedOut, "transaction older than transaction.timeout.ms");

    private static string Advice(TransactionErrorKind kind) => kind switch
    {
        TransactionErrorKind.Rejected => "Retrying will not help: fix the record (size, topic name) or the permissions.",
        TransactionErrorKind.Abortable => "The work may run again in a new transaction.",
        TransactionErrorKind.Retriable => "The same call may be made again.",
        _ => string.Empty,
    };

    private KafkaTransactionException Failure(TransactionErrorKind kind, KafkaException cause, string message) =>
        Failure(kind, cause.Error, cause, message);

    /// <summary>A failure whose outcome the caller decides (a terminal failure after the commit was sent is Unknown).</summary>
    private KafkaTransactionException Failure(TransactionErrorKind kind, KafkaException cause, TransactionOutcome outcome, string message) =>
        new(kind, cause.Error, message, lifecycle.State, cause) { TransactionalId = transactionalId, Attempts = transaction.Attempt, Outcome = outcome };

    private KafkaTransactionException Failure(TransactionErrorKind kind, Error error, Exception? inner, string message) =>
        new(kind, error, message, lifecycle.State, inner) { TransactionalId = transactionalId, Attempts = transaction.Attempt };
}
