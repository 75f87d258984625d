using System.Collections.Concurrent;
using System.Diagnostics;

namespace KafkaTx.IntegrationTests.Support;

/// <summary>
/// The KafkaTx.Reliability copier as a child process, so that a test can kill it for real (SIGKILL): an in-process
/// "crash" cannot stop librdkafka's background threads, which would go on heartbeating for the dead instance.
/// </summary>
internal sealed class CopierProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<(DateTime At, string Line)> _lines = new();

    private CopierProcess(Process process) => _process = process;

    public static CopierProcess Start(string bootstrapServers, string input, string output, string group, string transactionalId)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "KafkaTx.Reliability.dll");
        var start = new ProcessStartInfo("dotnet", [dll, "copy", "--bootstrap-servers", bootstrapServers, "--input", input, "--output", output, "--group", group, "--transactional-id", transactionalId])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        var process = new Process { StartInfo = start };
        var copier = new CopierProcess(process);
        process.OutputDataReceived += (_, e) => copier.Add(e.Data);
        process.ErrorDataReceived += (_, e) => copier.Add(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return copier;
    }

    public string Output => string.Join(Environment.NewLine, _lines.Select(l => l.Line));

    /// <summary>When the first line matching <paramref name="match"/> was printed.</summary>
    public async Task<DateTime> WaitForLineAsync(Func<string, bool> match, TimeSpan deadline)
    {
        await Eventually.Until(() => _lines.Any(l => match(l.Line)) || _process.HasExited, deadline, "the copier prints the line");
        var found = _lines.FirstOrDefault(l => match(l.Line));
        return found.Line is null ? throw new InvalidOperationException("The copier exited without printing the line:\n" + Output) : found.At;
    }

    /// <summary>SIGKILL: no shutdown, no abort, no leaving the group.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>Waits for the process to end and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan deadline)
    {
        using var timeout = new CancellationTokenSource(deadline);
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private void Add(string? line)
    {
        if (line is not null)
        {
            _lines.Enqueue((DateTime.UtcNow, line));
        }
    }
}
