using Microsoft.Extensions.Options;

namespace KafkaTx.Health;

/// <summary>Refuses health-check thresholds that would make the check report Degraded for ever or never.</summary>
internal sealed class KafkaTransactionsHealthCheckOptionsValidator : IValidateOptions<KafkaTransactionsHealthCheckOptions>
{
    public ValidateOptionsResult Validate(string? name, KafkaTransactionsHealthCheckOptions options)
    {
        var producer = string.IsNullOrEmpty(name) ? "(default)" : name;
        var failures = new List<string>();
        if (options.DegradedAfterFailedCommits < 1)
        {
            failures.Add($"Health check of producer '{producer}': DegradedAfterFailedCommits is {options.DegradedAfterFailedCommits}; set it to 1 or more.");
        }

        if (options.DegradedAfterProducerReplacements < 1)
        {
            failures.Add($"Health check of producer '{producer}': DegradedAfterProducerReplacements is {options.DegradedAfterProducerReplacements}; set it to 1 or more.");
        }

        if (options.DegradedAfterUncommittedFor <= TimeSpan.Zero)
        {
            failures.Add($"Health check of producer '{producer}': DegradedAfterUncommittedFor is {options.DegradedAfterUncommittedFor}; set it to a positive duration.");
        }

        if (options.DegradedAfterBrokersUnreachableFor <= TimeSpan.Zero)
        {
            failures.Add($"Health check of producer '{producer}': DegradedAfterBrokersUnreachableFor is {options.DegradedAfterBrokersUnreachableFor}; set it to a positive duration (15 s by default).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
