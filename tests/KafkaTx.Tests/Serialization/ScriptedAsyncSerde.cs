using System.Text;
using Confluent.Kafka;

namespace KafkaTx.Tests.Serialization;

/// <summary>
/// An asynchronous serde for tests, standing in for a Schema Registry serde: UTF-8 text after an await, with the
/// failures a registry serde has: the registry unreachable for the next calls (HttpRequestException), a value the
/// schema refuses (InvalidDataException, the record's own), and a gate that holds a call until released.
/// </summary>
public sealed class ScriptedAsyncSerde : IAsyncSerializer<Text>, IAsyncDeserializer<Text>
{
    private int _outageCalls;
    private int _slowCalls;
    private int _calls;
    private TimeSpan _slowFor;
    private bool _slowThenFails;

    /// <summary>Holds every call until it completes (a registry that is slow to answer), when set.</summary>
    public TaskCompletionSource? Gate { get; set; }

    /// <summary>Values the schema refuses: the record's own failure.</summary>
    public string? Refuses { get; set; }

    public int Calls => Volatile.Read(ref _calls);

    /// <summary>The next <paramref name="calls"/> calls fail as if the registry were unreachable.</summary>
    public void FailNext(int calls) => Volatile.Write(ref _outageCalls, calls);

    /// <summary>
    /// The next <paramref name="calls"/> calls answer only after <paramref name="delay"/> (a registry slow to answer),
    /// then fail as unreachable if <paramref name="thenFail"/>, else succeed.
    /// </summary>
    public void SlowNext(int calls, TimeSpan delay, bool thenFail)
    {
        _slowFor = delay;
        _slowThenFails = thenFail;
        Volatile.Write(ref _slowCalls, calls);
    }

    public async Task<byte[]> SerializeAsync(Text data, SerializationContext context)
    {
        await CallAsync(data.Value).ConfigureAwait(false);
        return Encoding.UTF8.GetBytes(data.Value);
    }

    public async Task<Text> DeserializeAsync(ReadOnlyMemory<byte> data, bool isNull, SerializationContext context)
    {
        var text = Encoding.UTF8.GetString(data.Span);
        await CallAsync(text).ConfigureAwait(false);
        return new Text(text);
    }

    private async Task CallAsync(string value)
    {
        Interlocked.Increment(ref _calls);
        await Task.Yield(); // never completes at once, as a registry call that misses the cache
        if (Gate is { } gate)
        {
            await gate.Task.ConfigureAwait(false);
        }

        if (Interlocked.Decrement(ref _slowCalls) >= 0)
        {
            await Task.Delay(_slowFor).ConfigureAwait(false);
            if (_slowThenFails)
            {
                throw new HttpRequestException("The request to registry:8081 timed out");
            }
        }

        if (Interlocked.Decrement(ref _outageCalls) >= 0)
        {
            throw new HttpRequestException("Connection refused (registry:8081)");
        }

        if (value == Refuses)
        {
            throw new InvalidDataException($"'{value}' does not match the schema");
        }
    }
}

/// <summary>A type only <see cref="ScriptedAsyncSerde"/> serializes.</summary>
public sealed record Text(string Value);
