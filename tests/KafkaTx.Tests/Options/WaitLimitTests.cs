using KafkaTx.Options;
using KafkaTx.Processing;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.Options;

/// <summary>
/// Times that are waited out with a timer (Task.Delay, CancelAfter refuse more than about 24.8 days) are refused at
/// start-up above one day, naming the option, its value and the limit, rather than throwing inside the processor later.
/// </summary>
public class WaitLimitTests
{
    private static IEnumerable<string> ProcessorFailures(Action<TransactionalProcessorOptions> configure)
    {
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "fake:9092";
            o.TransactionalIdPrefix = "order-processor";
            o.InstanceId = "0";
        }).AddTransactionalProcessor<CopyHandler>(configure);
        using var provider = services.BuildServiceProvider();
        var validator = provider.GetServices<IValidateOptions<TransactionalProcessorOptions>>().OfType<TransactionalProcessorOptionsValidator>().Single();
        var options = new TransactionalProcessorOptions();
        configure(options);
        return validator.Validate(string.Empty, options).Failures ?? [];
    }

    private static void Valid(TransactionalProcessorOptions o)
    {
        o.Topics.Add("incoming-orders");
        o.GroupId = "order-processors";
    }

    private static IEnumerable<string> ProducerFailures(Action<KafkaTransactionsOptions> change) =>
        new KafkaTransactionsOptionsValidator().Validate("orders", TestUnits.Options(change)).Failures ?? [];

    [Theory]
    [InlineData(1)]
    [InlineData(24)]
    public void A_shutdown_timeout_up_to_a_day_passes(int hours)
    {
        ProcessorFailures(o =>
        {
            Valid(o);
            o.ShutdownTimeout = TimeSpan.FromHours(hours);
        }).Should().BeEmpty();
    }

    [Fact]
    public void A_shutdown_timeout_above_a_day_is_refused_naming_it_its_value_and_the_limit()
    {
        ProcessorFailures(o =>
        {
            Valid(o);
            o.ShutdownTimeout = TimeSpan.MaxValue;
        }).Should().ContainSingle().Which.Should()
            .Contain("ShutdownTimeout is " + TimeSpan.MaxValue).And.Contain("at most 1.00:00:00").And.Contain("86400000 ms");
    }

    [Fact]
    public void A_processor_retry_max_delay_above_a_day_is_refused_naming_it_its_value_and_the_limit()
    {
        ProcessorFailures(o =>
        {
            Valid(o);
            o.Retry.MaxDelay = TimeSpan.FromDays(30);
        }).Should().ContainSingle().Which.Should()
            .Contain("Retry.MaxDelay is 30.00:00:00").And.Contain("at most 1.00:00:00");
    }

    [Fact]
    public void A_processor_retry_max_delay_of_a_day_passes()
    {
        ProcessorFailures(o =>
        {
            Valid(o);
            o.Retry.MaxDelay = TimeSpan.FromDays(1);
        }).Should().BeEmpty();
    }

    [Fact]
    public void A_producer_retry_max_delay_above_a_day_is_refused_naming_it_its_value_and_the_limit()
    {
        ProducerFailures(o => o.Retry.MaxDelay = TimeSpan.MaxValue).Should().ContainSingle().Which.Should()
            .Contain("'orders'").And.Contain("Retry.MaxDelay is " + TimeSpan.MaxValue).And.Contain("at most 1.00:00:00");
    }

    [Fact]
    public void A_producer_retry_max_delay_of_a_day_passes()
    {
        ProducerFailures(o => o.Retry.MaxDelay = TimeSpan.FromDays(1)).Should().BeEmpty();
    }

    [Fact]
    public void The_producer_timeouts_handed_to_timers_stay_refused_above_the_millisecond_limit()
    {
        // Already bounded (librdkafka takes 32-bit milliseconds, below what a timer accepts): kept so, not loosened.
        ProducerFailures(o => o.InitTimeout = TimeSpan.MaxValue).Should().ContainSingle().Which.Should().Contain("InitTimeout");
        ProducerFailures(o => o.CommitTimeout = TimeSpan.FromDays(30)).Should().Contain(f => f.Contains("CommitTimeout"));
    }
}
