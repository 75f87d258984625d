using Confluent.Kafka;
using KafkaTx.Processing;
using KafkaTx.Telemetry;
using KafkaTx.Testing.Shared;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Tests.Clients;

/// <summary>
/// librdkafka reports each failed connection attempt twice (a "FAIL" log line at Error and a Local_Transport error)
/// and retries several times a second: KafkaTx logs the loss of the connection once, the repeats at Debug, and the
/// return once.
/// </summary>
public class ConnectionFailureLogTests
{
    private const int Lost = 170;
    private const int FailedAgain = 171;
    private const int Restored = 172;

    private static readonly Error Refused = new(ErrorCode.Local_Transport, "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)");
    private static readonly Error AllDown = new(ErrorCode.Local_AllBrokersDown, "1/1 brokers are down");
    private static readonly LogMessage FailLine = new("rdkafka#producer-1", SyslogLevel.Error, "FAIL", "[thrd:127.0.0.1:9/bootstrap]: " + Refused.Reason);

    private static ValueTask Write(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("t", new Message<string, string> { Key = "k", Value = "v" });
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_burst_of_connection_failures_is_one_warning_then_debug_and_one_information_when_a_call_succeeds()
    {
        var logger = new ListLogger();
        var (unit, factory) = TestUnits.Create(logger: logger);
        await using var _ = unit;
        var reportError = factory.ErrorHandlers.Single();
        var reportLog = factory.LogHandlers.Single();

        for (var attempt = 0; attempt < 200; attempt++)
        {
            reportLog(FailLine);
            reportError(Refused);
            if (attempt % 20 == 0)
            {
                reportError(AllDown);
            }
        }

        var warningsOrWorse = logger.Entries.Where(e => e.Level >= LogLevel.Warning).ToList();
        warningsOrWorse.Should().ContainSingle("the connection was lost once").Which.Id.Id.Should().Be(Lost);
        warningsOrWorse[0].Message.Should().Contain("producer unit-test-0").And.Contain("Local_Transport").And.Contain("Connection refused");
        logger.Entries.Count(e => e.Id.Id == FailedAgain && e.Level == LogLevel.Debug).Should().Be(199 + 10, "every other error is a repeat");
        logger.Entries.Count(e => e.Id.Id == 13 && e.Level == LogLevel.Debug).Should().Be(200, "librdkafka's FAIL lines repeat the errors");
        unit.Connection.IsDisconnected.Should().BeTrue();

        await unit.ExecuteAsync(Write); // InitTransactions and the commit were answered by a broker

        unit.Connection.IsDisconnected.Should().BeFalse();
        var restored = logger.Entries.Where(e => e.Id.Id == Restored).Should().ContainSingle().Which;
        restored.Level.Should().Be(LogLevel.Information);
        restored.Message.Should().Contain("producer unit-test-0 is connected again").And.Contain("a call to the brokers succeeded").And.Contain("209 connection failures");
        logger.Entries.Count(e => e.Level >= LogLevel.Warning).Should().Be(1);
    }

    [Fact]
    public async Task A_client_that_reports_no_failure_for_the_quiet_period_is_connected_again_and_a_new_loss_is_logged_again()
    {
        var clock = new ManualClock();
        var logger = new ListLogger();
        var (unit, factory) = TestUnits.Create(time: clock, logger: logger);
        await using var _ = unit;
        var reportError = factory.ErrorHandlers.Single();
        var connection = unit.Connection;
        connection.QuietPeriod.Should().Be(TimeSpan.FromSeconds(45), "reconnect.backoff.max.ms (10 s) + socket.connection.setup.timeout.ms (30 s) + 5 s");

        reportError(Refused);
        clock.Advance(TimeSpan.FromSeconds(40));
        reportError(Refused);
        clock.Advance(TimeSpan.FromSeconds(40));
        connection.CheckQuiet();
        connection.IsDisconnected.Should().BeTrue("the last failure was 40 s ago, within the quiet period");

        clock.Advance(TimeSpan.FromSeconds(5));
        connection.CheckQuiet();

        connection.IsDisconnected.Should().BeFalse();
        logger.Entries.Where(e => e.Id.Id == Restored).Should().ContainSingle()
            .Which.Message.Should().Contain("after 85 s (no connection failure for 45 s); 1 connection failures");

        reportError(Refused);
        logger.Entries.Count(e => e.Id.Id == Lost).Should().Be(2, "a new loss after being connected again is a change of state");
    }

    [Fact]
    public async Task Errors_that_are_not_connection_failures_are_logged_each_time_as_before()
    {
        var logger = new ListLogger();
        var (unit, factory) = TestUnits.Create(logger: logger);
        await using var _ = unit;

        factory.ErrorHandlers.Single()(new Error(ErrorCode.Local_MsgTimedOut, "1 message(s) timed out"));
        factory.ErrorHandlers.Single()(new Error(ErrorCode.Local_MsgTimedOut, "1 message(s) timed out"));
        factory.ErrorHandlers.Single()(new Error(ErrorCode.Local_Transport, "fatal transport", true));

        logger.Entries.Count(e => e.Id.Id == 11 && e.Level == LogLevel.Warning).Should().Be(2);
        logger.Entries.Should().Contain(e => e.Id.Id == 12 && e.Level == LogLevel.Critical, "a fatal error is never a connection failure to wait out");
        unit.Connection.IsDisconnected.Should().BeFalse();
    }

    [Fact]
    public void A_processors_consumer_logs_its_connection_failures_once_and_a_record_shows_it_is_connected_again()
    {
        var logger = new ListLogger();
        var telemetry = new ProcessorTelemetry("orders", "order-processors", "orders-0", new KafkaTxInstrumentation(), logger, TimeProvider.System);

        for (var attempt = 0; attempt < 50; attempt++)
        {
            telemetry.ConsumerLog(FailLine);
            telemetry.ConsumerError(Refused);
        }

        telemetry.ConsumerError(new Error(ErrorCode.UnknownTopicOrPart, "Subscribed topic not available: orders"));
        telemetry.RecordTaken();
        telemetry.ConsumerClosed();

        var warnings = logger.Entries.Where(e => e.Level >= LogLevel.Warning).ToList();
        warnings.Should().HaveCount(2);
        warnings[0].Message.Should().Contain("consumer of processor orders lost its connection").And.Contain("Connection refused");
        warnings[1].Id.Id.Should().Be(120, "other consumer errors are logged as before");
        logger.Entries.Where(e => e.Id.Id == Restored).Should().ContainSingle().Which.Message.Should().Contain("49 connection failures");
    }
}
