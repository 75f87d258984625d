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
}
