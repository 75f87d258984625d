using Confluent.Kafka;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Clients;

/// <summary>
/// Whether one Kafka client reaches its brokers, as far as the client says, and its connection failures logged once
/// per change of state instead of once per attempt. librdkafka reports every failed attempt twice (a "FAIL" log line
/// and a Local_Transport error) and retries every few hundred milliseconds; it says nothing when a connection comes
/// back. So the client is disconnected from its first connection failure until a call the brokers had to answer
/// succeeds (<see cref="Answered"/>), or until it has reported no failure for longer than librdkafka takes to try
/// again and fail (<see cref="QuietPeriod"/>).
/// </summary>
/// <remarks>Fed from librdkafka's threads and the callers' threads; read from health checks.</remarks>
internal sealed class BrokerConnection
{
    private const long Never = long.MinValue;

    private readonly string _client;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private ITimer? _quietCheck;
    private volatile bool _disconnected;
    private long _disconnectedSince = Never;
    private long _allBrokersDownSince = Never;
    private long _lastFailure = Never;
    private DateTimeOffset _allBrokersDownSinceUtc;
    private Error? _lastError;
    private int _repeats;
    private bool _disposed;

    /// <param name="client">How log lines name the client ("producer order-api-0", "consumer of processor orders").</param>
    /// <param name="logger">The logger.</param>
    /// <param name="time">The clock.</param>
    /// <param name="quietPeriod">How long without a connection failure counts as connected again (see <see cref="QuietPeriodOf"/>).</param>
    public BrokerConnection(string client, ILogger logger, TimeProvider time, TimeSpan quietPeriod)
    {
        _client = client;
        _logger = logger;
        _time = time;
        QuietPeriod = quietPeriod;
    }

    /// <summary>How long a client that reports no connection failure is taken to be connected again.</summary>
    public TimeSpan QuietPeriod { get; }

    /// <summary>True from the first connection failure until the client is connected again.</summary>
    public bool IsDisconnected => _disconnected;

    /// <summary>
    /// librdkafka tries a broker again at least every reconnect.backoff.max.ms, and an attempt fails within
    /// socket.connection.setup.timeout.ms: a client silent for longer than both, plus a margin, is connected.
    /// </summary>
    public static TimeSpan QuietPeriodOf(ClientConfig? config) =>
        TimeSpan.FromMilliseconds((config?.ReconnectBackoffMaxMs ?? 10_000) + (config?.SocketConnectionSetupTimeoutMs ?? 30_000) + 5_000);

    /// <summary>Errors that say a broker could not be reached (or talked to), which librdkafka retries on its own.</summary>
    public static bool IsConnectionError(ErrorCode code) => code is ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown
        or ErrorCode.Local_Resolve or ErrorCode.Local_Ssl or ErrorCode.Local_Authentication;

    /// <summary>
    /// An error the client reported outside any call. A connection failure is logged here, at Warning when it
    /// disconnects the client and at Debug while it stays disconnected; anything else is left to the caller.
    /// </summary>
    /// <returns>Whether the error was a connection failure (and is logged).</returns>
    public bool OnError(Error error)
    {
        if (error.IsFatal || !IsConnectionError(error.Code))
        {
            return false;
        }

        bool disconnects;
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            _lastFailure = now;
            disconnects = !_disconnected && !_disposed;
            if (disconnects)
            {
                _disconnected = true;
                _disconnectedSince = now;
                _repeats = 0;
                _quietCheck = _time.CreateTimer(static state => ((BrokerConnection)state!).CheckQuiet(), this, QuietCheckInterval, QuietCheckInterval);
            }
            else
            {
                _repeats++;
            }

            if (error.Code == ErrorCode.Local_AllBrokersDown)
            {
                if (_allBrokersDownSince == Never)
                {
                    _allBrokersDownSince = now;
                    _allBrokersDownSinceUtc = _time.GetUtcNow();
                }
            }
            else
            {
                _lastError = error; // "1/1 brokers are down" says less than the failure that took them down
            }

            _lastError ??= error;
        }

        if (disconnects)
        {
            Log.BrokerConnectionLost(_logger, _client, error.Code, error.Reason);
        }
        else
        {
            Log.BrokerConnectionFailedAgain(_logger, _client, error.Code, error.Reason);
        }

        return true;
    }

    /// <summary>
    /// The level a librdkafka log line is written at. Its "FAIL" lines (a broker connection failed or closed) repeat
    /// what the error callback reports: Debug when they are at Warning or above (the error is logged, once), and
    /// Debug while the client is disconnected.
    /// </summary>
    public LogLevel LevelOf(LogMessage message)
    {
        var level = Log.ToLogLevel(message.Level);
        return message.Facility == "FAIL" && (level >= LogLevel.Warning || _disconnected) ? LogLevel.Debug : level;
    }

    /// <summary>A call the brokers had to answer succeeded: the client is connected.</summary>
    public void Answered()
    {
        if (_disconnected)
        {
            Reconnected("a call to the brokers succeeded");
        }
    }

    /// <summary>Takes the client as connected again once it has reported no failure for <see cref="QuietPeriod"/> (called by a timer).</summary>
    public void CheckQuiet()
    {
        if (!_disconnected)
        {
            return;
        }

        long lastFailure;
        lock (_lock)
        {
            lastFailure = _lastFailure;
        }

        if (_time.GetElapsedTime(lastFailure) >= QuietPeriod)
        {
            Reconnected($"no connection failure for {QuietPeriod.TotalSeconds:F0} s");
        }
    }

    /// <summary>What health checks read: since when no broker answered, if none does, and the latest connection failure.</summary>
    public BrokerConnectionStatus Status()
    {
        lock (_lock)
        {
            return _disconnected && _allBrokersDownSince != Never
                ? new BrokerConnectionStatus(_allBrokersDownSinceUtc, _time.GetElapsedTime(_allBrokersDownSince), _lastError)
                : new BrokerConnectionStatus(null, TimeSpan.Zero, _disconnected ? _lastError : null);
        }
    }

    /// <summary>The client is closed: no more state changes, and the timer stops.</summary>
    public void Close()
    {
        lock (_lock)
        {
            _disposed = true;
            _disconnected = false;
            _quietCheck?.Dispose();
            _quietCheck = null;
        }
    }

    private TimeSpan QuietCheckInterval => QuietPeriod / 4 < TimeSpan.FromSeconds(5) ? QuietPeriod / 4 : TimeSpan.FromSeconds(5);

    private void Reconnected(string evidence)
    {
        TimeSpan downFor;
        int repeats;
        lock (_lock)
        {
            if (!_disconnected)
            {
                return; // another thread saw it first
            }

            _disconnected = false;
            downFor = _time.GetElapsedTime(_disconnectedSince);
            repeats = _repeats;
            _disconnectedSince = Never;
            _allBrokersDownSince = Never;
            _lastError = null;
            _quietCheck?.Dispose();
            _quietCheck = null;
        }

        Log.BrokerConnectionRestored(_logger, _client, Math.Round(downFor.TotalSeconds, 1), evidence, repeats);
    }
}

/// <summary>A client's connection as a health check reports it.</summary>
/// <param name="UnreachableSince">When the client found every broker down, if it has not been connected since.</param>
/// <param name="UnreachableFor">How long that has lasted.</param>
/// <param name="LastError">The latest connection failure while disconnected.</param>
internal readonly record struct BrokerConnectionStatus(DateTimeOffset? UnreachableSince, TimeSpan UnreachableFor, Error? LastError);
