using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace KafkaTx.IntegrationTests.Support;

/// <summary>Keeps log lines, and lets a test wait for one as an event instead of sleeping.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _entries = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource Seen)> _waiters = [];
    private readonly Lock _lock = new();

    public IReadOnlyCollection<(LogLevel Level, string Message)> Entries => _entries;

    public Task WaitFor(Func<string, bool> match)
    {
        lock (_lock)
        {
            if (_entries.Any(e => match(e.Message)))
            {
                return Task.CompletedTask;
            }

            var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((match, seen));
            return seen.Task;
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private void Add(LogLevel level, string message)
    {
        lock (_lock)
        {
            _entries.Enqueue((level, message));
            foreach (var waiter in _waiters.Where(w => w.Match(message)).ToList())
            {
                waiter.Seen.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
    }

    private sealed class Logger(CapturingLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            provider.Add(logLevel, formatter(state, exception));
    }
}
