using System.Globalization;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Health;

/// <summary>
/// The part of a producer's health that depends on the brokers: Degraded while its client has reached no broker for
/// the threshold, or while its InitTransactions fails or has not completed within it. Each reason names the producer,
/// since when, and the last error.
/// </summary>
internal static class ProducerReachability
{
    /// <summary>Adds the reasons <paramref name="unit"/> is Degraded for, and (when <paramref name="data"/> is given) their figures.</summary>
    public static void AddReasons(TransactionalUnitOfWork unit, TimeSpan threshold, List<string> reasons, Dictionary<string, object>? data)
    {
        var connection = unit.Connection.Status();
        if (connection.LastError is { } lastError && data is not null)
        {
            data["last_connection_error"] = $"{lastError.Code}: {lastError.Reason}";
        }

        if (connection.UnreachableSince is { } unreachableSince && connection.UnreachableFor >= threshold)
        {
            data?.Add("broker_unreachable_since", unreachableSince.ToString("O", CultureInfo.InvariantCulture));
            data?.Add("broker_unreachable_for_seconds", Math.Round(connection.UnreachableFor.TotalSeconds, 1));
            reasons.Add($"producer '{unit.TransactionalId}' has reached no broker for {connection.UnreachableFor.TotalSeconds:F0} s (since {Time(unreachableSince)}; last error {Describe(connection.LastError)})");
        }

        var init = unit.Initialization.Status();
        if (init.PendingSince is not { } pendingSince || (init.LastFailure is null && init.PendingFor < threshold))
        {
            return;
        }

        data?.Add("initializing_since", pendingSince.ToString("O", CultureInfo.InvariantCulture));
        data?.Add("initializing_for_seconds", Math.Round(init.PendingFor.TotalSeconds, 1));
        if (init.LastFailure is { } failure)
        {
            data?.Add("last_init_error", failure.Message);
            reasons.Add($"producer '{unit.TransactionalId}' could not initialize: InitTransactions has not succeeded since {Time(pendingSince)}, and the attempt at {Time(init.FailedAt!.Value)} failed: {failure.Message} (the next call tries again)");
        }
        else
        {
            reasons.Add($"producer '{unit.TransactionalId}' has been initializing for {init.PendingFor.TotalSeconds:F0} s (since {Time(pendingSince)}; last connection error {Describe(connection.LastError)})");
        }
    }

    private static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Describe(Confluent.Kafka.Error? lastError) => lastError is null ? "none reported" : $"{lastError.Code}: {lastError.Reason}";
}
