using KafkaTx.Options;
using Microsoft.Extensions.Options;

namespace KafkaTx.Processing;

/// <summary>Start-up validation of a processor's options, naming the settings involved.</summary>
internal sealed class TransactionalProcessorOptionsValidator(IOptionsMonitor<KafkaTransactionsOptions> producers) : IValidateOptions<TransactionalProcessorOptions>
{
    // Settings that would silently break exactly-once, or that the processor derives itself.
    private static readonly Dictionary<string, string> Refused = new(StringComparer.Ordinal)
    {
        ["enable.auto.commit"] = "progress must be committed inside the transaction, never by the consumer on its own",
        ["enable.auto.offset.store"] = "the processor sends positions to the transaction itself",
        ["isolation.level"] = "a processor must read only committed records (read_committed), or it would process aborted ones",
        ["group.id"] = "set TransactionalProcessorOptions.GroupId instead",
        ["bootstrap.servers"] = "the processor uses its producer's BootstrapServers",
        ["partition.assignment.strategy"] = "set TransactionalProcessorOptions.AssignmentStrategy instead (with GroupProtocol Consumer the broker assigns partitions: see ConsumerSettings[\"group.remote.assignor\"])",
        ["auto.offset.reset"] = "set TransactionalProcessorOptions.AutoOffsetReset instead",
        ["enable.partition.eof"] = "the processor does not handle end-of-partition events",
    };

    public ValidateOptionsResult Validate(string? name, TransactionalProcessorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var label = string.IsNullOrEmpty(name) ? "Transactional processor" : $"Transactional processor '{name}'";
        var failures = new List<string>();

        if (options.Topics is null || options.Topics.Count == 0 || options.Topics.Any(string.IsNullOrWhiteSpace))
        {
            failures.Add($"{label}: Topics is empty or has an empty name. Name the topics to consume.");
        }

        if (string.IsNullOrWhiteSpace(options.GroupId))
        {
            failures.Add($"{label}: GroupId is missing. Every instance of the processor uses the same consumer group.");
        }

        if (options.MaxBatchSize < 1)
        {
            failures.Add($"{label}: MaxBatchSize is {options.MaxBatchSize}; it must be at least 1.");
        }

        if (options.MaxConcurrency is < 1 or > 1_000)
        {
            failures.Add($"{label}: MaxConcurrency is {options.MaxConcurrency}; it must be from 1 (one record at a time) to 1,000.");
        }

        if (!Enum.IsDefined(options.Order))
        {
            failures.Add($"{label}: Order is {(int)options.Order}, not a ProcessingOrder; use Key, Partition or Unordered.");
        }

        if (options.MaxBufferedRecords < options.MaxConcurrency)
        {
            failures.Add($"{label}: MaxBufferedRecords is {options.MaxBufferedRecords}, below MaxConcurrency ({options.MaxConcurrency}); the handlers could never all be busy. Raise it to at least {options.MaxConcurrency}.");
        }

        // Null when the producer's own options are invalid: their validation reports why, beside these failures.
        var transactionTimeout = ProducerTransactionTimeout(name ?? string.Empty);
        if (transactionTimeout is { } timeout && (options.MaxBatchDuration <= TimeSpan.Zero || options.MaxBatchDuration >= timeout / 2))
        {
            failures.Add($"{label}: MaxBatchDuration is {options.MaxBatchDuration.TotalMilliseconds} ms; it must be positive and below half of the producer's TransactionTimeout (transaction.timeout.ms = {timeout.TotalMilliseconds} ms), so that every transaction commits long before the broker would abort it.");
        }

        if (options.Retry is null || options.Retry.MaxAttempts < 1 || options.Retry.BaseDelay < TimeSpan.Zero || options.Retry.MaxDelay < options.Retry.BaseDelay)
        {
            failures.Add($"{label}: Retry must allow at least 1 attempt per record, with 0 <= BaseDelay <= MaxDelay.");
        }
        else
        {
            WaitLimit.Check(options.Retry.MaxDelay, "Retry.MaxDelay", label, failures);
        }

        if (options.ShutdownTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{label}: ShutdownTimeout must be positive.");
        }

        WaitLimit.Check(options.ShutdownTimeout, "ShutdownTimeout", label, failures);

        if (!options.StaticMembership && options.ConsumerSettings?.ContainsKey("group.instance.id") == true)
        {
            failures.Add($"{label}: ConsumerSettings sets 'group.instance.id' but StaticMembership is false; a group.instance.id makes the member static. Remove one of the two.");
        }

        if (options.Topics is not null && options.PoisonRecordPolicy == PoisonRecordPolicy.DeadLetter
            && options.Topics.Any(topic => options.DeadLetterTopicFor(topic) == topic || options.Topics.Contains(options.DeadLetterTopicFor(topic))))
        {
            failures.Add($"{label}: the dead-letter topic '{options.DeadLetterTopic}' is also an input topic; poison records would come back forever. Choose another DeadLetterTopic.");
        }

        foreach (var key in options.ConsumerSettings?.Keys ?? [])
        {
            if (Refused.TryGetValue(key, out var why))
            {
                failures.Add($"{label}: ConsumerSettings sets '{key}': {why}. Remove it.");
            }
        }

        GroupProtocolRules.Validate(label, options, failures);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private TimeSpan? ProducerTransactionTimeout(string name)
    {
        try
        {
            return producers.Get(name).TransactionTimeout;
        }
        catch (OptionsValidationException)
        {
            return null;
        }
    }
}
