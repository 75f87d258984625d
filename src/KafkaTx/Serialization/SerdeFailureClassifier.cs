using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Reflection;
using Confluent.Kafka;

namespace KafkaTx.Serialization;

/// <summary>
/// Whether a serializer's or deserializer's failure is the schema registry's (unreachable, timing out, failing: the
/// record is fine and will go through once the registry answers, so it is retried without counting toward poison)
/// or the record's own (an incompatible schema, an unknown schema id or subject, a corrupt payload: retrying cannot
/// help, so it is Rejected on the produce side and poison on the consume side).
/// </summary>
/// <remarks>
/// KafkaTx takes no dependency on Confluent.SchemaRegistry: its <c>SchemaRegistryException</c> is recognised by its
/// type name and read through its public <c>Status</c> (HTTP status) property, with the registry's error code in its
/// message ("...; error code: 50001", whose first three digits are the HTTP status) as the fallback. The registry's
/// answers that are not the record's are 5xx, 429, 408, and 401 / 403 / 407 (this client refused: an outage of its
/// access, fixed by an operator, never a reason to dead-letter); every other answer (404 / 40401 / 40403, 409, 422) is the
/// record's.
/// </remarks>
internal static class SerdeFailureClassifier
{
    private const string SchemaRegistryException = "Confluent.SchemaRegistry.SchemaRegistryException";
    private const string ErrorCodeMarker = "error code: ";

    /// <summary>Whether the failure (or an exception inside it) says the registry could not be reached or failed.</summary>
    public static bool IsRegistryUnavailable(Exception failure)
    {
        for (var e = failure; e is not null; e = e.InnerException)
        {
            if (e is AggregateException aggregate)
            {
                return aggregate.InnerExceptions.Any(IsRegistryUnavailable);
            }

            if (string.Equals(e.GetType().FullName, SchemaRegistryException, StringComparison.Ordinal))
            {
                return RegistryStatus(e) is { } status && IsTransient(status);
            }

            if (e is HttpRequestException http)
            {
                return http.StatusCode is not { } status || IsTransient(status);
            }

            if (e is TimeoutException or TaskCanceledException)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Whether KafkaTx reported a failure as the schema registry's: a Retriable failure of a serializer or deserializer
    /// (the record's own serde failures are Rejected, or a ConsumeException).
    /// </summary>
    public static bool IsRegistryOutage(KafkaTransactionException e) =>
        e.Kind == TransactionErrorKind.Retriable && e.Error.Code is ErrorCode.Local_KeySerialization or ErrorCode.Local_ValueSerialization
            or ErrorCode.Local_KeyDeserialization or ErrorCode.Local_ValueDeserialization;

    /// <summary>
    /// Answers that say nothing about the record: the registry failing (5xx), busy (429), timing out (408), or refusing
    /// this client (401, 403, 407: credentials or permissions, which an operator fixes while the record waits).
    /// </summary>
    private static bool IsTransient(HttpStatusCode status) => (int)status >= 500 || status
        is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout
        or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden or HttpStatusCode.ProxyAuthenticationRequired;

    [UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "When trimming removed the property, the error code in the message is read instead.")]
    private static HttpStatusCode? RegistryStatus(Exception e)
    {
        if (e.GetType().GetProperty("Status", BindingFlags.Public | BindingFlags.Instance)?.GetValue(e) is HttpStatusCode status)
        {
            return status;
        }

        var at = e.Message.LastIndexOf(ErrorCodeMarker, StringComparison.Ordinal);
        if (at >= 0)
        {
            var digits = e.Message.AsSpan(at + ErrorCodeMarker.Length);
            var length = 0;
            while (length < digits.Length && char.IsAsciiDigit(digits[length]))
            {
                length++;
            }

            if (length >= 3 && int.TryParse(digits[..3], NumberStyles.None, CultureInfo.InvariantCulture, out var http))
            {
                return (HttpStatusCode)http;
            }
        }

        return null;
    }
}
