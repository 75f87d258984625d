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

    [LoggerMessage(10, LogLevel.Warning, "Transaction of {TransactionalId} was open for {AgeMs} ms, not below transaction.timeout.ms ({TimeoutMs} ms); the broker aborts such transactions, so it is aborted instead of committed")]
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

    public static LogLevel ToLogLevel(SyslogLevel level) => level switch
    {
        SyslogLevel.Emergency or SyslogLevel.Alert or SyslogLevel.Critical => LogLevel.Critical,
        SyslogLevel.Error => LogLevel.Error,
        SyslogLevel.Warning => LogLevel.Warning,
        SyslogLevel.Notice or SyslogLevel.Info => LogLevel.Information,
        _ => LogLevel.Debug,
    };
}
