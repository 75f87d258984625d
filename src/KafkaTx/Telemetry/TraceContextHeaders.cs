using System.Diagnostics;
using System.Text;
using Confluent.Kafka;

namespace KafkaTx.Telemetry;

/// <summary>
/// W3C trace context (<c>traceparent</c>, <c>tracestate</c>) in Kafka record headers, so that a trace follows a
/// record from the transaction that wrote it to the processor that reads it.
/// </summary>
/// <remarks>
/// Written only when there is a trace to propagate (an activity is current), and never over headers the caller set:
/// a record that already carries a <c>traceparent</c> keeps it. The caller's <see cref="Headers"/> object is never
/// changed (it may be reused for other records); a copy with the trace context added is produced instead.
/// </remarks>
internal static class TraceContextHeaders
{
    public const string TraceParent = "traceparent";
    public const string TraceState = "tracestate";

    /// <summary>The headers to produce: <paramref name="headers"/> itself, or a copy carrying the activity's context.</summary>
    public static Headers? Inject(Activity activity, Headers? headers)
    {
        if (activity.IdFormat != ActivityIdFormat.W3C || Contains(headers, TraceParent))
        {
            return headers;
        }

        var withContext = new Headers();
        if (headers is not null)
        {
            foreach (var header in headers)
            {
                withContext.Add(header.Key, header.GetValueBytes());
            }
        }

        withContext.Add(TraceParent, FormatTraceParent(activity));
        if (!string.IsNullOrEmpty(activity.TraceStateString) && !Contains(headers, TraceState))
        {
            withContext.Add(TraceState, Encoding.UTF8.GetBytes(activity.TraceStateString));
        }

        return withContext;
    }

    /// <summary>The remote parent a record carries, if its headers hold a valid W3C <c>traceparent</c>.</summary>
    public static bool TryExtract(Headers? headers, out ActivityContext context)
    {
        context = default;
        if (headers is null || !headers.TryGetLastBytes(TraceParent, out var traceParent) || traceParent is null)
        {
            return false;
        }

        string? traceState = null;
        if (headers.TryGetLastBytes(TraceState, out var stateBytes) && stateBytes is { Length: > 0 })
        {
            traceState = Encoding.UTF8.GetString(stateBytes);
        }

        return ActivityContext.TryParse(Encoding.UTF8.GetString(traceParent), traceState, isRemote: true, out context);
    }

    private static bool Contains(Headers? headers, string key)
    {
        if (headers is null)
        {
            return false;
        }

        foreach (var header in headers)
        {
            if (string.Equals(header.Key, key, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    // A started W3C activity's Id is its traceparent ("00-{trace id}-{span id}-{flags}").
    private static byte[] FormatTraceParent(Activity activity) => Encoding.ASCII.GetBytes(activity.Id!);
}
