using Microsoft.Extensions.Options;

namespace KafkaTx.Hosting;

/// <summary>Refuses a start-up initialization that would not wait at all, or would hold the host's start for too long.</summary>
internal sealed class InitializeOnStartOptionsValidator : IValidateOptions<KafkaTransactionsInitializeOnStartOptions>
{
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromMinutes(10);

    public ValidateOptionsResult Validate(string? name, KafkaTransactionsInitializeOnStartOptions options)
    {
        var producer = string.IsNullOrEmpty(name) ? "(default)" : name;
        return options.Timeout <= TimeSpan.Zero || options.Timeout > MaxTimeout
            ? ValidateOptionsResult.Fail($"InitializeOnStart of producer '{producer}': Timeout is {options.Timeout}; set it to a positive duration of at most {MaxTimeout.TotalMinutes:F0} minutes (the host's start waits that long at most; 10 s by default).")
            : ValidateOptionsResult.Success;
    }
}
