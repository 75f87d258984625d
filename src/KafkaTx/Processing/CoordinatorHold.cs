using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// Whether the processor is waiting for its group coordinator, and since when. A batch whose offsets could not be
/// sent in time (the coordinator unreachable) is aborted; running the next one before the coordinator answers would
/// only handle the same records again, to be aborted again, for as long as the outage lasts. So the hold begins with
/// that abort and ends when the coordinator answers (an offset fetch, or a commit that went through).
/// </summary>
/// <remarks>Changed on the processor's thread; read by health checks on theirs.</remarks>
internal sealed class CoordinatorHold(ProcessorTelemetry telemetry, TimeProvider time)
{
    private long _since; // the timestamp the hold began at (at least 1); 0 when not held

    /// <summary>Whether no batch may begin until the group coordinator answers.</summary>
    public bool IsHeld => Volatile.Read(ref _since) != 0;

    /// <summary>How long the processor has waited for its group coordinator; zero when it is not waiting.</summary>
    public TimeSpan HeldFor
    {
        get
        {
            var since = Volatile.Read(ref _since);
            return since == 0 ? TimeSpan.Zero : time.GetElapsedTime(since);
        }
    }

    /// <summary>
    /// Whether a failed SendOffsetsToTransaction says the group coordinator could not be reached (rather than that it
    /// refused the offsets, as after a rebalance).
    /// </summary>
    public static bool MeansUnreachable(ErrorCode code) => code is
        ErrorCode.GroupCoordinatorNotAvailable or ErrorCode.NotCoordinatorForGroup or ErrorCode.GroupLoadInProgress or
        ErrorCode.Local_TimedOut or ErrorCode.RequestTimedOut or ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown;

    /// <summary>The group coordinator did not answer: hold from now, unless already holding.</summary>
    public void Begin()
    {
        if (_since == 0)
        {
            Volatile.Write(ref _since, Math.Max(1, time.GetTimestamp()));
            telemetry.WaitingForGroupCoordinator();
        }
    }

    /// <summary>The processor has nothing to hold (no partition assigned, or it stopped): the hold ends unanswered.</summary>
    public void Release() => Volatile.Write(ref _since, 0);

    /// <summary>The group coordinator answered: the hold, if any, is over.</summary>
    public void End()
    {
        var since = _since;
        if (since != 0)
        {
            Volatile.Write(ref _since, 0);
            telemetry.GroupCoordinatorAnswered(time.GetElapsedTime(since));
        }
    }
}
