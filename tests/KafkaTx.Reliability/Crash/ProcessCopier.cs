using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using KafkaTx.Reliability.Copying;

namespace KafkaTx.Reliability.Crash;

/// <summary>
/// A copier incarnation as a child process running this program's <c>copy</c> command, so that it can be killed for
/// real (SIGKILL) and paused (SIGSTOP): an in-process "crash" cannot stop librdkafka's background threads, which would
/// go on heartbeating for the dead instance.
/// </summary>
internal sealed partial class ProcessCopier : ICopier
{
    private const int SigStop = 19;
    private const int SigCont = 18;

    private readonly Process _process;
    private readonly ConcurrentQueue<(DateTime At, string Line)> _lines = new();
    private long _committedRecords;
    private DateTime? _firstCommitAt;
    private ArmedAwaitEnd? _armedAwait;

    private ProcessCopier(Process process)
    {
        _process = process;
        StartedAt = DateTime.UtcNow;
    }

    public long CommittedRecords => Interlocked.Read(ref _committedRecords);

    public long HandledRecords => CommittedRecords;

    public DateTime StartedAt { get; }

    public bool HasStopped => _process.HasExited;

    public DateTime? FirstCommitAt => _firstCommitAt;

    public ArmedAwaitEnd? ArmedAwait => Volatile.Read(ref _armedAwait);

    /// <summary>Everything the child printed.</summary>
    public string Output => string.Join(Environment.NewLine, _lines.Select(l => l.Line));

    public int ProcessId => _process.Id;

    public static ProcessCopier Start(CopierSettings settings)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "KafkaTx.Reliability.dll");
        var start = new ProcessStartInfo("dotnet", [
            dll, "copy",
            "--bootstrap-servers", settings.BootstrapServers,
            "--input", settings.Input,
            "--output", settings.Output,
            "--group", settings.Group,
            "--transactional-id", settings.TransactionalId,
            "--max-batch-size", settings.MaxBatchSize.ToString(CultureInfo.InvariantCulture),
            "--handler", settings.Handler.Name(),
            "--handler-delay", settings.HandlerDelay.ToString("c", CultureInfo.InvariantCulture),
            "--stop-call", settings.StopCall.ToString("c", CultureInfo.InvariantCulture),
            .. (settings.RandomDelay ? new[] { "--random-delay" } : Array.Empty<string>()),
            "--max-concurrency", settings.MaxConcurrency.ToString(CultureInfo.InvariantCulture),
            "--order", settings.Order.Name(),
            .. (settings.BatchHandler ? new[] { "--batch-handler" } : Array.Empty<string>()),
            "--ignore-cancellation", settings.IgnoreCancellationEvery.ToString(CultureInfo.InvariantCulture),
            "--exit-with-parent",
        ])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        var process = new Process { StartInfo = start };
        var copier = new ProcessCopier(process);
        process.OutputDataReceived += (_, e) => copier.Add(e.Data);
        process.ErrorDataReceived += (_, e) => copier.Add(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return copier;
    }

    /// <summary>When the first line matching <paramref name="match"/> was printed.</summary>
    public async Task<DateTime> WaitForLineAsync(Func<string, bool> match, TimeSpan deadline)
    {
        var until = DateTime.UtcNow + deadline;
        while (true)
        {
            var found = _lines.FirstOrDefault(l => match(l.Line));
            if (found.Line is not null)
            {
                return found.At;
            }

            if (_process.HasExited || DateTime.UtcNow > until)
            {
                throw new TimeoutException($"The copier {(_process.HasExited ? "exited" : "ran for " + deadline)} without printing the line it was waited for. It printed:\n{Output}");
            }

            await Task.Delay(10);
        }
    }

    public void ArmStop(long afterRecords)
    {
        // The child reads its standard input line by line (--exit-with-parent): "arm-stop N" arms its handler's call.
        _process.StandardInput.WriteLine("arm-stop " + afterRecords.ToString(CultureInfo.InvariantCulture));
        _process.StandardInput.Flush();
    }

    public async Task<string> WaitForArmedCallAsync(TimeSpan deadline)
    {
        var awaiting = "awaiting ";
        await WaitForLineAsync(l => l.StartsWith(awaiting, StringComparison.Ordinal), deadline);
        return _lines.First(l => l.Line.StartsWith(awaiting, StringComparison.Ordinal)).Line[awaiting.Length..];
    }

    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    public void Pause() => Signal(SigStop);

    public void Resume() => Signal(SigCont);

    public async Task<CopierEnd> WaitForEndAsync(TimeSpan deadline)
    {
        using var timeout = new CancellationTokenSource(deadline);
        await _process.WaitForExitAsync(timeout.Token);
        var ended = _lines.LastOrDefault(l => l.Line.StartsWith("ended ", StringComparison.Ordinal)).Line;
        return new CopierEnd(ended is null ? "(no final state printed)" : ended["ended ".Length..], _process.ExitCode);
    }

    public async Task StopAsync()
    {
        if (_process.HasExited)
        {
            return;
        }

        // SIGTERM: the host stops, the processor commits or aborts its open transaction and leaves.
        Signal(15);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("The copier did not stop within 30 s of SIGTERM. It printed:" + Environment.NewLine + Output);
        }
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

    private void Signal(int signal)
    {
        if (Kill(_process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed with errno {Marshal.GetLastPInvokeError()}.");
        }
    }

    private void Add(string? line)
    {
        if (line is null)
        {
            return;
        }

        var now = DateTime.UtcNow;
        _lines.Enqueue((now, line));
        var fields = line.Split(' ');
        if (fields is ["committed", _, var records] && long.TryParse(records, NumberStyles.None, CultureInfo.InvariantCulture, out var committed))
        {
            _firstCommitAt ??= now;
            Interlocked.Exchange(ref _committedRecords, committed);
        }
        else if (ArmedAwaitEnd.FromLine(line) is { } end)
        {
            Volatile.Write(ref _armedAwait, end);
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
