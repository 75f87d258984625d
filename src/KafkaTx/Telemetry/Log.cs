using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Telemetry;

/// <summary>Every log line KafkaTx writes, source-generated so that disabled levels cost nothing.</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Initializing transactions for transactional.id {TransactionalId}; pending transactions of an earlier instance with this id will be aborted")]
    public static partial void Initializing(ILogger logger, string transactionalId);

    [LoggerMessage(2, LogLevel.Information, "Transactions initialized for transactional.id {TransactionalId} in {ElapsedMs} ms")]
    public static partial void Initialized(ILogger logger, string transactionalId, long elapsedMs);

    [LoggerMessage(3, LogLevel.Debug, "Committed transaction of {TransactionalId} with {RecordCount} records in {ElapsedMs} ms")]
    public static partial void Committed(ILogger logger, string transactionalId, int recordCount, long elapsedMs);

    [LoggerMessage(4, LogLevel.Warning, "Aborted transaction of {TransactionalId}: {Reason}")]
    public static partial void Aborted(ILogger logger, string transactionalId, string reason);

    [LoggerMessage(5, LogLevel.Warning, "Transaction of {TransactionalId} failed ({Kind}); running the work again, attempt {NextAttempt} of {MaxAttempts}, in {DelayMs} ms")]
    public static partial void RetryingWork(ILogger logger, string transactionalId, TransactionErrorKind? kind, int nextAttempt, int maxAttempts, long delayMs, Exception exception);

    [LoggerMessage(6, LogLevel.Debug, "{Operation} for {TransactionalId} failed with a retriable error {ErrorCode}; retrying the call")]
    public static partial void RetryingCall(ILogger logger, string operation, string transactionalId, ErrorCode errorCode);

    [LoggerMessage(7, LogLevel.Critical, "Producer {TransactionalId} was fenced: a newer instance with the same transactional.id took over. This instance stops writing. If no other instance should exist, two instances share one transactional.id")]
    public static partial void Fenced(ILogger logger, string transactionalId, Exception exception);

    [LoggerMessage(8, LogLevel.Error, "Producer {TransactionalId} hit a fatal error and is faulted; call ResetAsync to replace the producer")]
    public static partial void Faulted(ILogger logger, string transactionalId, Exception exception);

    [LoggerMessage(9, LogLevel.Error, "The commit of {TransactionalId} has an unknown outcome; it is not treated as committed. Call CommitAsync again to learn the outcome, or ResetAsync")]
    public static partial void CommitOutcomeUnknown(ILogger logger, string transactionalId, Exception exception);

    [LoggerMessage(10, LogLevel.Warning, "Transaction of {TransactionalId} was open for {AgeMs} ms, too close to transaction.timeout.ms ({TimeoutMs} ms) for its commit to arrive before the broker may abort it; it is aborted instead of committed")]
    public static partial void TransactionExpired(ILogger logger, string transactionalId, long ageMs, long timeoutMs);

    [LoggerMessage(11, LogLevel.Warning, "Kafka client of {TransactionalId} reported {ErrorCode}: {Reason}")]
    public static partial void ClientError(ILogger logger, string transactionalId, ErrorCode errorCode, string reason);

    [LoggerMessage(12, LogLevel.Critical, "Kafka client of {TransactionalId} reported a fatal error {ErrorCode}: {Reason}")]
    public static partial void ClientFatalError(ILogger logger, string transactionalId, ErrorCode errorCode, string reason);

    [LoggerMessage(EventId = 13, Message = "librdkafka [{TransactionalId}] {Facility}: {Message}")]
    public static partial void ClientLog(ILogger logger, LogLevel level, string transactionalId, string facility, string message);

    [LoggerMessage(14, LogLevel.Error, "Aborting the transaction of {TransactionalId} after a failure did not succeed; the abort failure is reported instead of the original one")]
    public static partial void CleanupAbortFailed(ILogger logger, string transactionalId, Exception originalFailure);

    [LoggerMessage(15, LogLevel.Trace, "Unit of work {TransactionalId} went from {From} to {To}")]
    public static partial void StateChanged(ILogger logger, string transactionalId, TransactionState from, TransactionState to);

    [LoggerMessage(16, LogLevel.Information, "Replacing the producer of {TransactionalId} (state {State})")]
    public static partial void Resetting(ILogger logger, string transactionalId, TransactionState state);

    [LoggerMessage(17, LogLevel.Warning, "Disposing {TransactionalId} with a transaction open; aborting it")]
    public static partial void DisposingOpenTransaction(ILogger logger, string transactionalId);

    [LoggerMessage(18, LogLevel.Warning, "Disposing {TransactionalId}: the open transaction could not be aborted; the broker aborts it after transaction.timeout.ms, or at once when a new producer with this id initializes")]
    public static partial void DisposeAbortFailed(ILogger logger, string transactionalId, Exception exception);

    [LoggerMessage(19, LogLevel.Debug, "The local queue of {TransactionalId} is full; Produce waits for deliveries to make room")]
    public static partial void WaitingForQueueRoom(ILogger logger, string transactionalId);

    [LoggerMessage(20, LogLevel.Warning, "Replacing the producer of {TransactionalId} after a fatal error during {Operation}: {ErrorCode} ({Reason}); replacement {Replacement} of at most {MaxReplacements} in a row. The new producer's InitTransactions aborts what the old one left open")]
    public static partial void ReplacingProducer(ILogger logger, string transactionalId, string operation, ErrorCode errorCode, string reason, int replacement, int maxReplacements);

    [LoggerMessage(22, LogLevel.Error, "librdkafka's {Operation} for {TransactionalId} has not returned {OverrunMs} ms after its own timeout of {TimeoutMs} ms; the producer is abandoned and replaced, and disposed if the call ever returns")]
    public static partial void BlockingCallStuck(ILogger logger, string operation, string transactionalId, long overrunMs, long timeoutMs);

    [LoggerMessage(21, LogLevel.Warning, "The replacement producer of {TransactionalId} could not initialize yet (state {State}); the next use tries again")]
    public static partial void ReplacementNotInitialized(ILogger logger, string transactionalId, TransactionState state, Exception exception);

    // ---- settlement, disposal and pools (event ids 124-159)

    [LoggerMessage(124, LogLevel.Information, "{Operation} settles the earlier commit of {TransactionalId} whose outcome was unknown: resuming it")]
    public static partial void SettlingPendingCommit(ILogger logger, string transactionalId, string operation);

    [LoggerMessage(125, LogLevel.Information, "The earlier commit of {TransactionalId} whose outcome was unknown is settled: {Outcome}")]
    public static partial void PendingCommitSettled(ILogger logger, string transactionalId, string outcome);

    [LoggerMessage(126, LogLevel.Information, "Disposing {TransactionalId}: waiting up to {TimeoutMs} ms for the call in flight to end before aborting and closing the producer")]
    public static partial void DisposeWaiting(ILogger logger, string transactionalId, long timeoutMs);

    [LoggerMessage(127, LogLevel.Warning, "Disposing {TransactionalId}: the call in flight did not end within {TimeoutMs} ms; the unit is disposed now and refuses every call, and its producer is closed when that call returns. Its open transaction, if any, is aborted by the broker after transaction.timeout.ms, or at once by the next producer with this id")]
    public static partial void DisposeGaveUpWaiting(ILogger logger, string transactionalId, long timeoutMs);

    [LoggerMessage(128, LogLevel.Warning, "The resumed commit of {TransactionalId} still has an unknown outcome; replacing the producer, whose InitTransactions completes or aborts it")]
    public static partial void SettlingByReplacingProducer(ILogger logger, string transactionalId, Exception exception);

    [LoggerMessage(129, LogLevel.Warning, "Pool slot {TransactionalId} is Faulted; replacing its producer (ResetAsync) before it takes a call")]
    public static partial void PoolSlotReset(ILogger logger, string transactionalId);

    [LoggerMessage(130, LogLevel.Critical, "Pool slot {TransactionalId} was fenced: a newer instance uses this instance's transactional.ids. The pool refuses every call from now on, and creates or initializes no other slot, which would fence the newer instance's")]
    public static partial void PoolFenced(ILogger logger, string transactionalId);

    // ---- processors (event ids 100+)

    [LoggerMessage(100, LogLevel.Information, "Processor {Name} ({TransactionalId}) started: topics {Topics}, group {GroupId}")]
    public static partial void ProcessorStarted(ILogger logger, string name, string transactionalId, string topics, string groupId);

    [LoggerMessage(101, LogLevel.Information, "Processor {Name} ({TransactionalId}) stopped in state {State} after {Transactions} transactions and {Records} records")]
    public static partial void ProcessorStopped(ILogger logger, string name, string transactionalId, ProcessorState state, long transactions, long records);

    [LoggerMessage(102, LogLevel.Warning, "Processor {Name}: handling {Topic} [{Partition}] @{Offset} failed (attempt {Attempt} of {MaxAttempts}); aborting and rewinding")]
    public static partial void HandlerFailed(ILogger logger, string name, string topic, int partition, long offset, int attempt, int maxAttempts, Exception exception);

    [LoggerMessage(103, LogLevel.Error, "Processor {Name}: {Topic} [{Partition}] @{Offset} failed {Attempts} times and was written to the dead-letter topic {DeadLetterTopic}")]
    public static partial void DeadLettered(ILogger logger, string name, string topic, int partition, long offset, int attempts, string deadLetterTopic, Exception lastError);

    [LoggerMessage(104, LogLevel.Error, "Processor {Name}: {Topic} [{Partition}] @{Offset} failed {Attempts} times and was skipped without output")]
    public static partial void PoisonSkipped(ILogger logger, string name, string topic, int partition, long offset, int attempts, Exception lastError);

    [LoggerMessage(105, LogLevel.Critical, "Processor {Name}: {Topic} [{Partition}] @{Offset} failed {Attempts} times; the poison record policy is Stop, so the processor stops")]
    public static partial void PoisonStopped(ILogger logger, string name, string topic, int partition, long offset, int attempts, Exception lastError);

    [LoggerMessage(106, LogLevel.Warning, "Processor {Name} ({TransactionalId}): the commit failed ({Kind}) with {Records} records; aborted, rewinding and trying again")]
    public static partial void CommitFailed(ILogger logger, string name, string transactionalId, TransactionErrorKind kind, int records, Exception exception);

    [LoggerMessage(107, LogLevel.Information, "Processor {Name} ({TransactionalId}): aborting the transaction: {Reason}")]
    public static partial void ProcessorAborting(ILogger logger, string name, string transactionalId, string reason);

    [LoggerMessage(108, LogLevel.Critical, "Processor {Name} ({TransactionalId}) was fenced: another instance with this transactional.id took over. It stops at once and writes nothing more")]
    public static partial void ProcessorFenced(ILogger logger, string name, string transactionalId, Exception exception);

    [LoggerMessage(109, LogLevel.Warning, "Processor {Name} ({TransactionalId}): the commit of {Records} records has an unknown outcome; rewinding to the offsets the group holds")]
    public static partial void ProcessorCommitOutcomeUnknown(ILogger logger, string name, string transactionalId, int records, Exception exception);

    [LoggerMessage(110, LogLevel.Critical, "Processor {Name} ({TransactionalId}) ended {State}; stopping the application (exit code {ExitCode}) so that it is restarted or replaced. Set StopApplicationOnFailure to false to keep the application running")]
    public static partial void StoppingApplication(ILogger logger, string name, string transactionalId, ProcessorState state, int exitCode, Exception? exception);

    [LoggerMessage(111, LogLevel.Critical, "Processor {Name} ({TransactionalId}) failed and stops")]
    public static partial void ProcessorFailed(ILogger logger, string name, string transactionalId, Exception exception);

    [LoggerMessage(112, LogLevel.Warning, "Processor {Name} ({TransactionalId}) could not initialize its producer; trying again in {DelayMs} ms")]
    public static partial void ProcessorInitRetry(ILogger logger, string name, string transactionalId, long delayMs, Exception exception);

    [LoggerMessage(113, LogLevel.Warning, "Processor {Name} ({TransactionalId}): an abort did not complete; it is resumed before the next transaction")]
    public static partial void ProcessorAbortIncomplete(ILogger logger, string name, string transactionalId, Exception exception);

    [LoggerMessage(114, LogLevel.Warning, "Processor {Name} ({TransactionalId}): could not read the committed offsets to rewind; consuming waits until it can")]
    public static partial void RewindFailed(ILogger logger, string name, string transactionalId, Exception exception);

    [LoggerMessage(115, LogLevel.Debug, "Processor {Name}: rewound to the committed offsets {Offsets} ({Fetched} partition(s) fetched from the group, the others as this processor committed them)")]
    public static partial void Rewound(ILogger logger, string name, string offsets, int fetched);

    [LoggerMessage(116, LogLevel.Debug, "Processor {Name}: no seek for {Partition} ({Reason}); it starts from its committed offset")]
    public static partial void SeekSkipped(ILogger logger, string name, string partition, string reason);

    [LoggerMessage(117, LogLevel.Information, "Processor {Name}: partitions assigned: {Partitions}")]
    public static partial void PartitionsAssigned(ILogger logger, string name, string partitions);

    [LoggerMessage(118, LogLevel.Information, "Processor {Name}: partitions revoked: {Partitions} (transaction open: {InTransaction})")]
    public static partial void PartitionsRevoked(ILogger logger, string name, string partitions, bool inTransaction);

    [LoggerMessage(119, LogLevel.Warning, "Processor {Name}: partitions lost: {Partitions} (transaction open: {InTransaction}); aborting")]
    public static partial void PartitionsLost(ILogger logger, string name, string partitions, bool inTransaction);

    [LoggerMessage(120, LogLevel.Warning, "Processor {Name}: consumer reported {ErrorCode}: {Reason} (fatal: {IsFatal})")]
    public static partial void ConsumerError(ILogger logger, string name, ErrorCode errorCode, string reason, bool isFatal);

    [LoggerMessage(121, LogLevel.Warning, "Processor {Name} ({TransactionalId}): the open transaction could not be committed during shutdown; aborting it")]
    public static partial void ShutdownCommitFailed(ILogger logger, string name, string transactionalId, Exception exception);

    [LoggerMessage(122, LogLevel.Information, "Processor {Name} ({TransactionalId}): the transaction has been open {AgeMs} ms, half the transaction timeout; committing early")]
    public static partial void CommittingEarly(ILogger logger, string name, string transactionalId, long ageMs);

    [LoggerMessage(123, LogLevel.Warning, "Processor {Name} ({TransactionalId}): the producer could not initialize after a commit with an unknown outcome; the next transaction initializes it")]
    public static partial void ProcessorSettleDeferred(ILogger logger, string name, string transactionalId, Exception exception);

    [LoggerMessage(140, LogLevel.Warning, "Processor {Name}: the handler call for {Topic} [{Partition}] @{Offset} has run {RanMs} ms and ignored its cancellation for {IgnoredMs} ms after {Reason}; it is abandoned: its transaction aborts without it, its writes are refused, and its slot, its DI scope and its records' lane stay taken until it ends")]
    public static partial void HandlerCallAbandoned(ILogger logger, string name, string topic, int partition, long offset, long ranMs, long ignoredMs, string reason);

    [LoggerMessage(141, LogLevel.Information, "Processor {Name}: the abandoned handler call for {Topic} [{Partition}] @{Offset} ended after {RanMs} ms; its slot and its records' lane are free again")]
    public static partial void AbandonedCallEnded(ILogger logger, string name, string topic, int partition, long offset, long ranMs, Exception? exception);

    // ---- broker connections and start-up initialization (event ids 170-179)

    [LoggerMessage(170, LogLevel.Warning, "Kafka client {Client} lost its connection to the brokers: {ErrorCode}: {Reason}. librdkafka keeps trying; further connection failures are logged at Debug until it is connected again")]
    public static partial void BrokerConnectionLost(ILogger logger, string client, ErrorCode errorCode, string reason);

    [LoggerMessage(171, LogLevel.Debug, "Kafka client {Client} is still not connected: {ErrorCode}: {Reason}")]
    public static partial void BrokerConnectionFailedAgain(ILogger logger, string client, ErrorCode errorCode, string reason);

    [LoggerMessage(172, LogLevel.Information, "Kafka client {Client} is connected again after {DisconnectedSeconds} s ({Evidence}); {Repeats} connection failures in between were logged at Debug")]
    public static partial void BrokerConnectionRestored(ILogger logger, string client, double disconnectedSeconds, string evidence, int repeats);

    [LoggerMessage(173, LogLevel.Warning, "Producer {Producer} ({TransactionalId}) could not initialize within {TimeoutSeconds} s of the start: {Error}. The application starts anyway; requests will retry initialization, and the health check reports the producer meanwhile")]
    public static partial void NotInitializedOnStart(ILogger logger, string producer, string transactionalId, double timeoutSeconds, string error);

    [LoggerMessage(180, LogLevel.Information, "Producer {Producer} (transactional.id prefix {TransactionalIdPrefix}) runs on {Backend}")]
    public static partial void ProducerBackend(ILogger logger, string producer, string transactionalIdPrefix, string backend);

    public static LogLevel ToLogLevel(SyslogLevel level) => level switch
    {
        SyslogLevel.Emergency or SyslogLevel.Alert or SyslogLevel.Critical => LogLevel.Critical,
        SyslogLevel.Error => LogLevel.Error,
        SyslogLevel.Warning => LogLevel.Warning,
        SyslogLevel.Notice or SyslogLevel.Info => LogLevel.Information,
        _ => LogLevel.Debug,
    };

    [LoggerMessage(190, LogLevel.Warning, "Processor {Name}: the consumer group refused to let group.instance.id {InstanceId} join: another member still holds it (UNRELEASED_INSTANCE_ID, consumer protocol). After a restart that is the previous incarnation, until its session expires on the broker (group.consumer.session.timeout.ms, 45 s by default). Joining again in {DelayMs} ms (attempt {Attempt})")]
    public static partial void JoinRefusedInstanceIdHeld(ILogger logger, string name, string? instanceId, long delayMs, int attempt);

    [LoggerMessage(191, LogLevel.Warning, "Processor {Name} ({TransactionalId}): the offsets of {Records} records could not be sent to the transaction {AgeMs} ms after it began (the group coordinator unreachable?). Aborting it before the transaction timeout would; the batch runs again in a new transaction once the coordinator answers")]
    public static partial void ProcessorOffsetsNotSentInTime(ILogger logger, string name, string transactionalId, int records, long ageMs);

    [LoggerMessage(192, LogLevel.Warning, "Processor {Name}: waiting for the coordinator of group {GroupId}, which does not answer. No new transaction begins until it does (asking it for the committed offsets); the consumer stays in the group and health reports Degraded meanwhile")]
    public static partial void ProcessorWaitingForGroupCoordinator(ILogger logger, string name, string? groupId);

    [LoggerMessage(193, LogLevel.Information, "Processor {Name}: the coordinator of group {GroupId} answers again after {WaitedMs} ms; processing resumes from the committed offsets")]
    public static partial void ProcessorGroupCoordinatorAnswered(ILogger logger, string name, string? groupId, long waitedMs);

    [LoggerMessage(194, LogLevel.Warning, "Processor {Name} ({TransactionalId}): the schema registry could not be reached, failed or did not answer in time, with {Records} records in the transaction. Aborted; the processor backs off and reads them again without counting an attempt (nothing is dead-lettered for an outage)")]
    public static partial void ProcessorRegistryUnavailable(ILogger logger, string name, string transactionalId, int records, Exception exception);
}
