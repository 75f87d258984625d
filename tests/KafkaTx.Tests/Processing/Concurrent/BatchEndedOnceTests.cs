using KafkaTx.Processing;
using KafkaTx.Processing.Concurrent;
using KafkaTx.Telemetry;
using KafkaTx.UnitOfWork;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KafkaTx.Tests.Processing.Concurrent;

/// <summary>
/// A concurrent batch ends once. Some paths ended it twice (FailAsync's finally, then the revoke callback's
/// AbortAndRewindAsync when the failure path threw; the batch's own end, then the stop's FinishAsync): each extra end
/// doubled BatchCap back, undoing the halving an overrun with no call at fault had just made, so that the next batch
/// was as long as the one that overran. A second end before anything of a next batch happens is now a no-op.
/// </summary>
public class BatchEndedOnceTests
{
    [Fact]
    public async Task Ending_a_batch_twice_keeps_the_cap_an_overrun_halved_and_the_next_batch_doubles_it_back()
    {
        var dispatch = Dispatch(out var unit);
        await using var disposeUnit = unit;

        _ = dispatch.BatchToken(CancellationToken.None); // a batch begins (its transaction takes the batch's token)
        dispatch.Overran(TimeSpan.FromSeconds(60));     // no call ran long enough to be at fault: the cap is halved
        dispatch.BatchCap.Should().Be(1, "nothing was dispatched: the cap is at its floor");

        dispatch.BatchEnded();
        dispatch.BatchCap.Should().Be(1, "the batch that overran ends with the cap kept low");
        dispatch.BatchEnded(); // the same batch ended again (a failure path, then the revoke's or the stop's abort)
        dispatch.BatchCap.Should().Be(1, "ending the same batch again must not double the cap back");

        _ = dispatch.BatchToken(CancellationToken.None); // the next batch, which does not overrun
        dispatch.BatchEnded();
        dispatch.BatchCap.Should().Be(2, "a batch that ends without overrunning doubles the cap back, once");
        dispatch.BatchEnded();
        dispatch.BatchCap.Should().Be(2);
    }

    private static HandlerDispatch<string, string> Dispatch(out TransactionalUnitOfWork unit)
    {
        var options = new TransactionalProcessorOptions { MaxConcurrency = 4 };
        options.Topics.Add("in");
        var time = TimeProvider.System;
        unit = TestUnits.Create().Unit;
        var telemetry = new ProcessorTelemetry("orders", "group", "tx-orders", new KafkaTxInstrumentation(), NullLogger.Instance, time);
        return new HandlerDispatch<string, string>(
            options,
            unit,
            new ProcessorUnitOfWork(unit, options, time, telemetry),
            new RecordAttempts(),
            new PoisonRecords(options, unit, telemetry),
            typeof(CopyHandler),
            new RecordDeserializer<string, string>(options.Deserializers, TimeSpan.FromMinutes(1), time),
            new LaneQueues(),
            telemetry,
            time);
    }
}
