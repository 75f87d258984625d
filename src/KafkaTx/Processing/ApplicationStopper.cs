using KafkaTx.Telemetry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Processing;

/// <summary>
/// Stops the application when a processor can no longer work, as .NET does for a failed BackgroundService (StopHost),
/// and sets a non-zero exit code, so that an orchestrator learns that this instance must be restarted or replaced.
/// A fenced processor that just went on running would do nothing, for ever, unnoticed.
/// </summary>
internal sealed class ApplicationStopper(IHostApplicationLifetime? lifetime = null)
{
    /// <summary>The exit code of an application stopped by a processor.</summary>
    public const int FailureExitCode = 1;

    /// <summary>Sets the process's exit code unless something already set one; replaceable in tests.</summary>
    public Action<int> SetExitCode { get; init; } = static code =>
    {
        if (Environment.ExitCode == 0)
        {
            Environment.ExitCode = code;
        }
    };

    public void Stop(ILogger logger, string processor, string transactionalId, ProcessorState state, Exception? failure)
    {
        Log.StoppingApplication(logger, processor, transactionalId, state, FailureExitCode, failure);
        SetExitCode(FailureExitCode);
        lifetime?.StopApplication();
    }
}
