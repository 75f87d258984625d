using Confluent.Kafka;
using KafkaTx;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace WebApi;

/// <summary>What a failure means for the client: the status, whether it may retry (and when), and what was written.</summary>
/// <param name="Status">The HTTP status.</param>
/// <param name="Title">The problem's title.</param>
/// <param name="RetryAfterSeconds">Sent as Retry-After when the client may safely send the same request again.</param>
/// <param name="Written">What read_committed consumers can see of the request: "nothing", or "unknown" (all of it or none of it).</param>
public sealed record ProblemMapping(int Status, string Title, int? RetryAfterSeconds, string Written);

/// <summary>
/// The one place that turns what POST /orders can throw into an HTTP status (README.md, "Errors", gives the reasoning
/// per row). <see cref="KafkaTransactionException.Outcome"/> is read first: a commit that was sent and then failed
/// (fenced, fatal, timed out) may have written the order, whatever its kind. Every other failure left nothing visible
/// to read_committed consumers, and its kind says whether a retry can help.
/// </summary>
/// <remarks>A request its client aborted never gets here: ASP.NET Core's exception handler middleware answers it
/// itself (499, since .NET 8) when the exception is an OperationCanceledException and the request's token is cancelled.</remarks>
public sealed class KafkaExceptionHandler(IProblemDetailsService problemDetails, ILogger<KafkaExceptionHandler> logger) : IExceptionHandler
{
    private const string Nothing = "nothing";

    public static ProblemMapping Map(Exception exception, HttpContext context) => exception switch
    {
        // First: the commit was sent, then failed. All of the order is visible or none of it, and nobody knows which.
        KafkaTransactionException { Outcome: TransactionOutcome.Unknown } =>
            new(500, "The commit was sent but not confirmed: the order may or may not have been written. Check before sending it again (or send it again with the same orderId, if the consumers deduplicate).", null, "unknown"),

        // Bad input that model binding refused (malformed JSON, wrong content type): the endpoint never ran.
        BadHttpRequestException bad => new(bad.StatusCode, "The request could not be read.", null, Nothing),

        KafkaTransactionException { Kind: TransactionErrorKind.Abortable } =>
            new(503, "The transaction was aborted after every retry; nothing was written. Retry later.", 1, Nothing),
        KafkaTransactionException { Kind: TransactionErrorKind.Retriable } =>
            new(503, "Kafka did not answer in time (no broker or coordinator reachable); nothing was written. Retry later.", 5, Nothing),
        // Fenced and Fatal before the commit was sent: raised by the call that fenced or faulted the producer, and by
        // every later call, which the unit refuses with the same kind and the error that ended it.
        KafkaTransactionException { Kind: TransactionErrorKind.Fenced } =>
            new(503, "This instance was replaced by a newer one with its transactional.id; nothing was written. Retry: another instance takes the request.", 5, Nothing),
        KafkaTransactionException { Kind: TransactionErrorKind.Fatal } =>
            new(500, "The Kafka producer is unusable (for example not authorized); nothing was written. An operator must fix the cause.", null, Nothing),
        KafkaTransactionException { Kind: TransactionErrorKind.Rejected, Error.Code: ErrorCode.MsgSizeTooLarge or ErrorCode.RecordListTooLarge or ErrorCode.InvalidMsgSize } =>
            new(413, "The order is too large for Kafka; nothing was written.", null, Nothing),
        KafkaTransactionException { Kind: TransactionErrorKind.Rejected } =>
            new(500, "Kafka refused the records (unknown topic, not authorized); nothing was written. An operator must fix the configuration.", null, Nothing),
        // (TransactionErrorKind.OutcomeUnknown always carries Outcome Unknown: the first row.)

        // The host is stopping: the unit of work is being disposed, or the host's token was cancelled.
        ObjectDisposedException =>
            new(503, "The service is shutting down; nothing was written. Retry: another instance takes the request.", 1, Nothing),
        OperationCanceledException when IsStopping(context) =>
            new(503, "The service is shutting down; nothing was written. Retry: another instance takes the request.", 1, Nothing),

        // Cancelled by neither the client (ASP.NET Core answers that itself) nor the host: a time-out. ExecuteAsync
        // observes its token only until the commit is sent, so the transaction was aborted.
        OperationCanceledException =>
            new(503, "The request timed out before its transaction committed; nothing was written. Retry later.", 1, Nothing),

        // Everything else is a bug or a configuration mistake (no serializer registered, a serializer that throws,
        // invalid options): the transaction was aborted, and a retry fails the same way.
        _ => new(500, "The order could not be written; nothing was written.", null, Nothing),
    };

    private static bool IsStopping(HttpContext context) =>
        context.RequestServices?.GetService<IHostApplicationLifetime>()?.ApplicationStopping.IsCancellationRequested == true;

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        var mapping = Map(exception, httpContext);
        // The client's mistakes and departures are one line; the server's failures carry the exception (with KafkaTx's
        // message: the transactional.id, the state, what to do), at Error when a retry will not help.
        if (mapping.Status < 500)
        {
            logger.LogWarning("{Method} {Path}: {Status} ({Title}) {Reason}", httpContext.Request.Method, httpContext.Request.Path, mapping.Status, mapping.Title, exception.Message);
        }
        else
        {
            logger.Log(mapping.RetryAfterSeconds is null ? LogLevel.Error : LogLevel.Warning, exception, "{Method} {Path}: {Status} ({Title})", httpContext.Request.Method, httpContext.Request.Path, mapping.Status, mapping.Title);
        }

        httpContext.Response.StatusCode = mapping.Status;
        if (mapping.RetryAfterSeconds is { } seconds)
        {
            httpContext.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        // The exception's message goes to the log, not to the client (it names brokers and transactional ids), except
        // for a request that could not be read, whose message is about the client's own input.
        var problem = new ProblemDetails { Status = mapping.Status, Title = mapping.Title, Detail = exception is BadHttpRequestException ? exception.Message : null };
        problem.Extensions["written"] = mapping.Written;
        if (exception is KafkaTransactionException failure)
        {
            problem.Extensions["kind"] = failure.Kind.ToString();
            problem.Extensions["outcome"] = failure.Outcome.ToString();
        }

        return await problemDetails.TryWriteAsync(new() { HttpContext = httpContext, ProblemDetails = problem, Exception = exception });
    }
}
