using Confluent.Kafka;
using KafkaTx.Options;
using KafkaTx.Tests.Fakes;

namespace KafkaTx.Tests.Options;

public class KafkaTransactionsOptionsValidatorTests
{
    private static IEnumerable<string> Failures(Action<KafkaTransactionsOptions> change)
    {
        var options = TestUnits.Options(change);
        var result = new KafkaTransactionsOptionsValidator().Validate("orders", options);
        return result.Failures ?? [];
    }

    [Fact]
    public void Valid_options_pass()
    {
        new KafkaTransactionsOptionsValidator().Validate("orders", TestUnits.Options()).Succeeded.Should().BeTrue();
    }

    [Fact]
    public void Missing_bootstrap_servers_is_named()
    {
        Failures(o => o.BootstrapServers = " ").Should().ContainSingle().Which.Should().Contain("'orders'").And.Contain("BootstrapServers is missing");
    }

    [Fact]
    public void Missing_transactional_id_explains_what_to_set_and_why()
    {
        Failures(o =>
        {
            o.TransactionalIdPrefix = null;
            o.InstanceId = null;
        }).Should().ContainSingle().Which.Should().Contain("no transactional id").And.Contain("stable across restarts").And.Contain("KAFKATX_INSTANCE_ID");
    }

    [Fact]
    public void A_prefix_without_an_instance_id_is_named()
    {
        Failures(o => o.InstanceId = null).Should().ContainSingle().Which.Should().Contain("TransactionalIdPrefix is 'unit-test'").And.Contain("no instance id");
    }

    [Fact]
    public void Both_an_explicit_id_and_a_prefix_is_ambiguous()
    {
        Failures(o => o.TransactionalId = "explicit").Should().ContainSingle().Which.Should().Contain("both TransactionalId").And.Contain("TransactionalIdPrefix");
    }

    [Theory]
    [InlineData(60, 60)]
    [InlineData(60, 90)]
    public void A_delivery_timeout_not_below_the_transaction_timeout_names_both_settings(int transactionSeconds, int deliverySeconds)
    {
        Failures(o =>
        {
            o.TransactionTimeout = TimeSpan.FromSeconds(transactionSeconds);
            o.DeliveryTimeout = TimeSpan.FromSeconds(deliverySeconds);
            o.CommitTimeout = TimeSpan.FromSeconds(10);
        }).Should().ContainSingle().Which.Should().Contain("message.timeout.ms").And.Contain("transaction.timeout.ms").And.Contain("must be below");
    }

    [Fact]
    public void Setting_only_the_transaction_timeout_is_valid_and_the_other_timeouts_follow_it()
    {
        var options = TestUnits.Options(o => o.TransactionTimeout = TimeSpan.FromSeconds(20));

        new KafkaTransactionsOptionsValidator().Validate("orders", options).Succeeded.Should().BeTrue();
        options.DeliveryTimeout.Should().Be(TimeSpan.FromSeconds(15));
        options.CommitTimeout.Should().Be(TimeSpan.FromSeconds(10));
        options.AbortTimeout.Should().Be(TimeSpan.FromSeconds(10));
        options.SendOffsetsTimeout.Should().Be(TimeSpan.FromSeconds(10));
        options.InitTimeout.Should().Be(TimeSpan.FromSeconds(30), "initialization waits for the coordinator, not for a transaction");
        var config = options.ToProducerConfig();
        config.TransactionTimeoutMs.Should().Be(20_000);
        config.MessageTimeoutMs.Should().Be(15_000);
    }

    [Fact]
    public void The_defaults_are_those_of_a_60_second_transaction_timeout()
    {
        var options = new KafkaTransactionsOptions();

        options.DeliveryTimeout.Should().Be(TimeSpan.FromSeconds(45));
        options.CommitTimeout.Should().Be(TimeSpan.FromSeconds(30));
        options.AbortTimeout.Should().Be(TimeSpan.FromSeconds(30));
        options.SendOffsetsTimeout.Should().Be(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void An_explicit_timeout_is_kept_whatever_the_transaction_timeout()
    {
        var options = TestUnits.Options(o =>
        {
            o.CommitTimeout = TimeSpan.FromSeconds(5);
            o.TransactionTimeout = TimeSpan.FromSeconds(120);
        });

        options.CommitTimeout.Should().Be(TimeSpan.FromSeconds(5));
        options.DeliveryTimeout.Should().Be(TimeSpan.FromSeconds(90));
    }

    [Fact]
    public void An_explicit_delivery_timeout_that_contradicts_a_lowered_transaction_timeout_names_both_settings()
    {
        Failures(o =>
        {
            o.DeliveryTimeout = TimeSpan.FromSeconds(45);
            o.TransactionTimeout = TimeSpan.FromSeconds(20);
        }).Should().ContainSingle().Which.Should().Contain("DeliveryTimeout").And.Contain("TransactionTimeout").And.Contain("leave DeliveryTimeout unset");
    }

    [Fact]
    public void A_negative_replacement_budget_is_refused()
    {
        Failures(o => o.MaxProducerReplacements = -1).Should().ContainSingle().Which.Should().Contain("MaxProducerReplacements");
    }

    [Fact]
    public void A_commit_timeout_beyond_the_transaction_timeout_is_refused()
    {
        Failures(o =>
        {
            o.TransactionTimeout = TimeSpan.FromSeconds(20);
            o.DeliveryTimeout = TimeSpan.FromSeconds(10);
            o.CommitTimeout = TimeSpan.FromSeconds(30);
        }).Should().ContainSingle().Which.Should().Contain("CommitTimeout").And.Contain("transaction.timeout.ms");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void Non_positive_timeouts_are_refused(int seconds)
    {
        Failures(o => o.InitTimeout = TimeSpan.FromSeconds(seconds)).Should().ContainSingle().Which.Should().Contain("InitTimeout").And.Contain("positive and finite");
    }

    [Fact]
    public void An_infinite_timeout_is_refused()
    {
        Failures(o => o.AbortTimeout = Timeout.InfiniteTimeSpan).Should().ContainSingle().Which.Should().Contain("AbortTimeout");
        Failures(o => o.SendOffsetsTimeout = TimeSpan.MaxValue).Should().ContainSingle().Which.Should().Contain("SendOffsetsTimeout");
    }

    [Theory]
    [InlineData("acks", "1")]
    [InlineData("acks", "0")]
    [InlineData("request.required.acks", "1")]
    public void Acks_other_than_all_contradict_transactions(string key, string value)
    {
        Failures(o => o.ClientSettings[key] = value).Should().ContainSingle().Which.Should().Contain($"{key}={value}").And.Contain("acks=all").And.Contain("transactional.id");
    }

    [Fact]
    public void Idempotence_off_contradicts_transactions()
    {
        Failures(o => o.ClientSettings["enable.idempotence"] = "false").Should().ContainSingle().Which.Should().Contain("enable.idempotence=false").And.Contain("transactional.id");
    }

    [Fact]
    public void Too_many_requests_in_flight_contradict_idempotence()
    {
        Failures(o => o.ClientSettings["max.in.flight.requests.per.connection"] = "10").Should().ContainSingle().Which.Should().Contain("max.in.flight.requests.per.connection=10").And.Contain("enable.idempotence");
    }

    [Theory]
    [InlineData("transactional.id")]
    [InlineData("transaction.timeout.ms")]
    [InlineData("message.timeout.ms")]
    [InlineData("bootstrap.servers")]
    [InlineData("retry.backoff.ms")]
    [InlineData("dotnet.producer.enable.delivery.reports")]
    public void Settings_KafkaTx_owns_are_refused_in_client_settings(string key)
    {
        Failures(o => o.ClientSettings[key] = "1").Should().ContainSingle().Which.Should().Contain($"'{key}'").And.Contain("instead");
    }

    [Fact]
    public void Zero_attempts_is_refused()
    {
        Failures(o => o.Retry.MaxAttempts = 0).Should().ContainSingle().Which.Should().Contain("MaxAttempts");
    }

    [Fact]
    public void Every_problem_is_reported_at_once()
    {
        Failures(o =>
        {
            o.BootstrapServers = null;
            o.InstanceId = null;
            o.ClientSettings["acks"] = "1";
        }).Should().HaveCount(3);
    }

    [Fact]
    public void The_instance_id_falls_back_to_the_environment_variable()
    {
        var options = TestUnits.Options(o => o.InstanceId = null);
        var previous = Environment.GetEnvironmentVariable(KafkaTransactionsOptions.InstanceIdEnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(KafkaTransactionsOptions.InstanceIdEnvironmentVariable, "pod-2");
            options.ResolveTransactionalId().Should().Be("unit-test-pod-2");
        }
        finally
        {
            Environment.SetEnvironmentVariable(KafkaTransactionsOptions.InstanceIdEnvironmentVariable, previous);
        }
    }

    [Fact]
    public void The_producer_configuration_enforces_the_transactional_settings()
    {
        var options = TestUnits.Options(o =>
        {
            o.TransactionTimeout = TimeSpan.FromSeconds(30);
            o.DeliveryTimeout = TimeSpan.FromSeconds(20);
            o.CommitTimeout = TimeSpan.FromSeconds(20);
            o.ClientSettings["security.protocol"] = "sasl_ssl";
        });

        var config = options.ToProducerConfig();

        config.TransactionalId.Should().Be("unit-test-0");
        config.EnableIdempotence.Should().BeTrue();
        config.Acks.Should().Be(Acks.All);
        config.TransactionTimeoutMs.Should().Be(30_000);
        config.MessageTimeoutMs.Should().Be(20_000);
        config.RetryBackoffMs.Should().Be(20);
        config.LingerMs.Should().Be(20);
        config.Get("security.protocol").Should().Be("sasl_ssl");
        config.Get("dotnet.producer.enable.delivery.reports").Should().BeNull("delivery reports are on unless DeliveryTracking is None");
    }

    [Fact]
    public void No_delivery_tracking_turns_Confluent_Kafkas_delivery_reports_off()
    {
        var options = new KafkaTransactionsOptions { BootstrapServers = "b:9092", TransactionalId = "t", DeliveryTracking = DeliveryTracking.None };

        options.ToProducerConfig().Get("dotnet.producer.enable.delivery.reports").Should().Be("false");
    }
}
