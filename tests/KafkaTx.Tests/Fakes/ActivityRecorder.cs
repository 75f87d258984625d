using System.Collections.Concurrent;
using System.Diagnostics;

namespace KafkaTx.Tests.Fakes;

/// <summary>
/// Records the activities of the given sources only (by instance, not by name), so that tests running in parallel,
/// each with its own KafkaTx instrumentation, do not see each other's spans.
/// </summary>
internal sealed class ActivityRecorder : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<Activity> _stopped = new();

    public ActivityRecorder(params ActivitySource[] sources)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => sources.Any(s => ReferenceEquals(s, source)),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>The stopped activities with this operation name, in the order they stopped.</summary>
    public List<Activity> Stopped(string name) => [.. _stopped.Where(a => a.OperationName == name)];

    public void Dispose() => _listener.Dispose();
}

internal static class ActivityExtensions
{
    public static List<string> EventNames(this Activity activity) => [.. activity.Events.Select(e => e.Name)];

    public static object? Tag(this Activity activity, string key) => activity.GetTagItem(key);

    /// <summary>The tag of the first event with this name.</summary>
    public static object? EventTag(this Activity activity, string eventName, string key) =>
        activity.Events.First(e => e.Name == eventName).Tags.FirstOrDefault(t => t.Key == key).Value;
}
