using System.Globalization;
using Microsoft.Extensions.Options;

namespace KafkaTx.Options;

/// <summary>
/// Start-up validation: every problem is reported at once, each naming the settings involved and what to do,
/// so that a misconfigured application fails before it sends anything.
/// </summary>
internal sealed class KafkaTransactionsOptionsValidator : IValidateOptions<KafkaTransactionsOptions>
{
    // librdkafka's own limit for idempotent producers: more in-flight requests would allow reordering.
    private const int MaxInFlightForIdempotence = 5;

    // Settings KafkaTx derives from its options; setting them twice would make two sources of truth.
    private static readonly Dictionary<string, string> OwnedSettings = new(StringComparer.Ordinal)
    {
        ["bootstrap.servers"] = nameof(KafkaTransactionsOptions.BootstrapServers),
        ["transactional.id"] = $"{nameof(KafkaTransactionsOptions.TransactionalIdPrefix)} and {nameof(KafkaTransactionsOptions.InstanceId)} (or {nameof(KafkaTransactionsOptions.TransactionalId)})",
        ["transaction.timeout.ms"] = nameof(KafkaTransactionsOptions.TransactionTimeout),
        ["message.timeout.ms"] = nameof(KafkaTransactionsOptions.DeliveryTimeout),
        ["delivery.timeout.ms"] = nameof(KafkaTransactionsOptions.DeliveryTimeout),
        ["linger.ms"] = nameof(KafkaTransactionsOptions.Linger),
        ["queue.buffering.max.ms"] = nameof(KafkaTransactionsOptions.Linger),
        ["retry.backoff.ms"] = nameof(KafkaTransactionsOptions.RetryBackoff),
        ["dotnet.producer.enable.delivery.reports"] = nameof(KafkaTransactionsOptions.DeliveryTracking),
    };

    public ValidateOptionsResult Validate(string? name, KafkaTransactionsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        var label = string.IsNullOrEmpty(name) ? "KafkaTransactions" : $"KafkaTransactions '{name}'";

        if (string.IsNullOrWhiteSpace(options.BootstrapServers))
        {
            failures.Add($"{label}: BootstrapServers is missing (null or empty). Set BootstrapServers, or {KafkaTransactionsOptions.BootstrapServersEnvironmentVariable} in the application's configuration or environment, to the Kafka brokers' host:port list (bootstrap.servers); or, to run on the in-memory Kafka when no broker is configured, call UseInMemoryKafkaWhenNoBootstrapServers() (package KafkaTx.Testing) on this producer's builder.");
        }

        ValidateTransactionalId(options, label, failures);
        ValidateTimeouts(options, label, failures);
        ValidateRetry(options.Retry, label, failures);
        if (options.MaxProducerReplacements < 0)
        {
            failures.Add($"{label}: MaxProducerReplacements is {options.MaxProducerReplacements}; it must be 0 (no self-healing) or more.");
        }

        ValidateClientSettings(options.ClientSettings, label, failures);

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void ValidateTransactionalId(KafkaTransactionsOptions options, string label, List<string> failures)
    {
        var hasExplicit = !string.IsNullOrWhiteSpace(options.TransactionalId);
        var hasPrefix = !string.IsNullOrWhiteSpace(options.TransactionalIdPrefix);
        if (hasExplicit && hasPrefix)
        {
            failures.Add($"{label}: both TransactionalId ('{options.TransactionalId}') and TransactionalIdPrefix ('{options.TransactionalIdPrefix}') are set. Set one: a complete TransactionalId, or a prefix plus InstanceId.");
            return;
        }

        var resolved = options.ResolveTransactionalId();
        if (resolved is null)
        {
            failures.Add(hasPrefix
                ? $"{label}: TransactionalIdPrefix is '{options.TransactionalIdPrefix}' but no instance id is set. Set InstanceId (in code or the producer's configuration section), or {KafkaTransactionsOptions.InstanceIdEnvironmentVariable} (in the application's configuration or the environment), to a value that is stable across restarts and unique per instance (for example the pod ordinal). See docs/transactional-id.md."
                : $"{label}: no transactional id. Set TransactionalIdPrefix plus InstanceId (or {KafkaTransactionsOptions.InstanceIdEnvironmentVariable} in the application's configuration or the environment), or a complete TransactionalId. It must be stable across restarts and unique per instance. See docs/transactional-id.md.");
        }
        else if (resolved.Trim().Length != resolved.Length)
        {
            failures.Add($"{label}: the transactional id '{resolved}' has leading or trailing white space; remove it.");
        }
    }

    private static void ValidateTimeouts(KafkaTransactionsOptions options, string label, List<string> failures)
    {
        RequirePositive(options.TransactionTimeout, nameof(options.TransactionTimeout), label, failures);
        RequirePositive(options.DeliveryTimeout, nameof(options.DeliveryTimeout), label, failures);
        RequirePositive(options.InitTimeout, nameof(options.InitTimeout), label, failures);
        RequirePositive(options.CommitTimeout, nameof(options.CommitTimeout), label, failures);
        RequirePositive(options.AbortTimeout, nameof(options.AbortTimeout), label, failures);
        RequirePositive(options.SendOffsetsTimeout, nameof(options.SendOffsetsTimeout), label, failures);
        if (options.Linger < TimeSpan.Zero || options.Linger > TimeSpan.FromMilliseconds(900_000))
        {
            failures.Add($"{label}: Linger (linger.ms) is {Ms(options.Linger)}; it must be between 0 and 900000 ms.");
        }

        if (options.RetryBackoff < TimeSpan.FromMilliseconds(1) || options.RetryBackoff > TimeSpan.FromMilliseconds(300_000))
        {
            failures.Add($"{label}: RetryBackoff (retry.backoff.ms) is {Ms(options.RetryBackoff)}; it must be between 1 and 300000 ms.");
        }

        if (options.DeliveryTimeout > TimeSpan.Zero && options.DeliveryTimeout >= options.TransactionTimeout)
        {
            failures.Add($"{label}: DeliveryTimeout (message.timeout.ms = {Ms(options.DeliveryTimeout)}) must be below TransactionTimeout (transaction.timeout.ms = {Ms(options.TransactionTimeout)}): otherwise the broker can abort the transaction while a record is still being retried, and the record's own error is lost. Lower DeliveryTimeout or raise TransactionTimeout, or leave DeliveryTimeout unset: it then follows TransactionTimeout.");
        }

        if (options.CommitTimeout > options.TransactionTimeout)
        {
            failures.Add($"{label}: CommitTimeout ({Ms(options.CommitTimeout)}) exceeds TransactionTimeout (transaction.timeout.ms = {Ms(options.TransactionTimeout)}); a commit is retried only within the transaction timeout. Lower CommitTimeout, or leave it unset: it then follows TransactionTimeout.");
        }
    }

    private static void ValidateRetry(TransactionRetryOptions? retry, string label, List<string> failures)
    {
        if (retry is null)
        {
            failures.Add($"{label}: Retry is null; leave it at its default or set MaxAttempts to 1 to disable retries.");
            return;
        }

        if (retry.MaxAttempts < 1)
        {
            failures.Add($"{label}: Retry.MaxAttempts is {retry.MaxAttempts}; it must be at least 1 (1 disables retries).");
        }

        if (retry.BaseDelay < TimeSpan.Zero || retry.MaxDelay < retry.BaseDelay)
        {
            failures.Add($"{label}: Retry.BaseDelay ({Ms(retry.BaseDelay)}) must be non-negative and not above Retry.MaxDelay ({Ms(retry.MaxDelay)}).");
        }
        else
        {
            WaitLimit.Check(retry.MaxDelay, "Retry.MaxDelay", label, failures);
        }
    }

    private static void ValidateClientSettings(IDictionary<string, string>? settings, string label, List<string> failures)
    {
        if (settings is null)
        {
            return;
        }

        foreach (var (key, value) in settings)
        {
            if (OwnedSettings.TryGetValue(key, out var option))
            {
                failures.Add($"{label}: ClientSettings sets '{key}', which KafkaTx derives from {option}. Set {option} instead.");
            }
        }

        if (settings.TryGetValue("enable.idempotence", out var idempotence) && !IsTrue(idempotence))
        {
            failures.Add($"{label}: ClientSettings sets enable.idempotence={idempotence}, which contradicts transactional.id: transactions require the idempotent producer. Remove enable.idempotence.");
        }

        foreach (var acksKey in new[] { "acks", "request.required.acks" })
        {
            if (settings.TryGetValue(acksKey, out var acks) && acks is not ("all" or "-1"))
            {
                failures.Add($"{label}: ClientSettings sets {acksKey}={acks}, which contradicts transactional.id: transactions require acks=all. Remove {acksKey}.");
            }
        }

        foreach (var inFlightKey in new[] { "max.in.flight.requests.per.connection", "max.in.flight" })
        {
            if (settings.TryGetValue(inFlightKey, out var inFlight)
                && int.TryParse(inFlight, NumberStyles.Integer, CultureInfo.InvariantCulture, out var count)
                && count > MaxInFlightForIdempotence)
            {
                failures.Add($"{label}: ClientSettings sets {inFlightKey}={count}, which contradicts enable.idempotence (required by transactions): at most {MaxInFlightForIdempotence} requests may be in flight.");
            }
        }
    }

    private static void RequirePositive(TimeSpan value, string name, string label, List<string> failures)
    {
        // librdkafka takes milliseconds as a 32-bit integer; nothing here may be infinite.
        if (value <= TimeSpan.Zero || value.TotalMilliseconds > int.MaxValue)
        {
            failures.Add($"{label}: {name} is {value}; it must be positive and finite (at most {int.MaxValue} ms).");
        }
    }

    private static bool IsTrue(string value) => value.Equals("true", StringComparison.OrdinalIgnoreCase) || value == "1";

    private static string Ms(TimeSpan value) => string.Create(CultureInfo.InvariantCulture, $"{value.TotalMilliseconds} ms");
}
