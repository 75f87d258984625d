using System.Globalization;

namespace KafkaTx.Options;

/// <summary>
/// The one bound on a configured time that KafkaTx waits out with a timer (a retry's backoff, a stop's drain): timers
/// refuse anything above about 24.8 days (Task.Delay, CancelAfter), so a larger value would pass start-up and throw
/// inside the processor or the unit of work much later. One day is far beyond any sensible setting.
/// </summary>
internal static class WaitLimit
{
    /// <summary>The longest time a waited-out setting may take.</summary>
    public static readonly TimeSpan Max = TimeSpan.FromDays(1);

    /// <summary>Adds a failure naming the option, its value and the limit when <paramref name="value"/> is above <see cref="Max"/>.</summary>
    /// <param name="value">The configured time.</param>
    /// <param name="option">The option's name as the user sets it (for example "Retry.MaxDelay").</param>
    /// <param name="label">Whose options these are, as the validator's other messages start.</param>
    /// <param name="failures">The validator's failures.</param>
    public static void Check(TimeSpan value, string option, string label, List<string> failures)
    {
        if (value > Max)
        {
            failures.Add(string.Create(
                CultureInfo.InvariantCulture,
                $"{label}: {option} is {value} ({value.TotalMilliseconds} ms); it must be at most {Max} (1 day, {Max.TotalMilliseconds} ms): it is waited out with a timer, which cannot run that long."));
        }
    }
}
