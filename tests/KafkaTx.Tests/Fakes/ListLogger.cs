using Microsoft.Extensions.Logging;

namespace KafkaTx.Tests.Fakes;

/// <summary>Keeps every log entry: event id, level and the formatted message.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly Lock _lock = new();
    private readonly List<(EventId Id, LogLevel Level, string Message)> _entries = [];

    public IReadOnlyList<(EventId Id, LogLevel Level, string Message)> Entries
    {
        get
        {
            lock (_lock)
            {
                return [.. _entries];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lock)
        {
            _entries.Add((eventId, logLevel, formatter(state, exception)));
        }
    }
}
