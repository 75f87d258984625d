namespace KafkaTx.IntegrationTests.Support;

/// <summary>Polls a condition until it holds or a deadline passes: the alternative to sleeping in tests.</summary>
internal static class Eventually
{
    public static async Task Until(Func<bool> condition, TimeSpan deadline, string? what = null)
    {
        var stopAt = DateTime.UtcNow + deadline;
        while (!condition())
        {
            if (DateTime.UtcNow >= stopAt)
            {
                throw new TimeoutException($"Condition not met within {deadline}{(what is null ? string.Empty : ": " + what)}.");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>
    /// Reads a value until <paramref name="done"/> holds for it or a deadline passes, and returns the value that
    /// satisfied it, for the caller to assert on; a timeout names the last value read.
    /// </summary>
    public static async Task<T> Until<T>(Func<T> read, Func<T, bool> done, TimeSpan deadline, string what, Func<T, string> describe)
    {
        var stopAt = DateTime.UtcNow + deadline;
        while (true)
        {
            var value = read();
            if (done(value))
            {
                return value;
            }

            if (DateTime.UtcNow >= stopAt)
            {
                throw new TimeoutException($"Condition not met within {deadline}: {what}. Last read: {describe(value)}.");
            }

            await Task.Delay(20);
        }
    }
}
