using KafkaTx.Retry;

namespace KafkaTx.Tests.Retry;

public class RetryBackoffTests
{
    private static readonly TransactionRetryOptions NoJitter = new() { BaseDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(1), UseJitter = false };

    [Theory]
    [InlineData(2, 100)]
    [InlineData(3, 200)]
    [InlineData(4, 400)]
    [InlineData(5, 800)]
    [InlineData(6, 1000)]
    [InlineData(60, 1000)]
    public void Doubles_from_the_base_delay_up_to_the_maximum(int nextAttempt, double expectedMs)
    {
        RetryBackoff.DelayBefore(NoJitter, nextAttempt, random: 0.5).TotalMilliseconds.Should().Be(expectedMs);
    }

    [Theory]
    [InlineData(0.0, 0)]
    [InlineData(0.25, 100)]
    [InlineData(0.999, 399.6)]
    public void Full_jitter_draws_between_zero_and_the_exponential_delay(double random, double expectedMs)
    {
        var options = new TransactionRetryOptions { BaseDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(1), UseJitter = true };

        RetryBackoff.DelayBefore(options, nextAttempt: 4, random).TotalMilliseconds.Should().BeApproximately(expectedMs, 0.001);
    }

    [Fact]
    public void A_zero_base_delay_never_waits()
    {
        var options = new TransactionRetryOptions { BaseDelay = TimeSpan.Zero, UseJitter = false };

        RetryBackoff.DelayBefore(options, 5, 0.7).Should().Be(TimeSpan.Zero);
    }
}
