using System.Collections.Concurrent;

namespace KafkaTx.Processing;

/// <summary>
/// A thread of the processor's own, with a synchronization context that brings the loop's continuations back to it.
/// The loop makes blocking librdkafka calls (Consume, Committed, Close, and the rebalance callbacks, which run inside
/// Consume and wait for a commit or an abort): on the thread pool each would hold a pool thread for as long as it
/// blocks, and a few processors could starve the application's own work.
/// </summary>
/// <remarks>
/// Only the loop's own awaits return here (they use <c>ConfigureAwait(true)</c>). The handler runs with no
/// synchronization context (<see cref="WithoutContext"/>), as in ASP.NET Core: its continuations run on the thread pool
/// and a handler that blocks on a task cannot deadlock the loop.
/// </remarks>
internal sealed class ProcessorThread : SynchronizationContext, IDisposable
{
    private readonly BlockingCollection<(SendOrPostCallback Callback, object? State)> _queue = [];

    private ProcessorThread()
    {
    }

    /// <summary>Runs <paramref name="loop"/> on a new thread of its own; the task completes as the loop does.</summary>
    /// <param name="name">The thread's name, for debuggers and dumps.</param>
    /// <param name="loop">The loop.</param>
    /// <returns>The loop's task, completed with its outcome.</returns>
    public static Task RunAsync(string name, Func<Task> loop)
    {
        var completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() => Pump(loop, completion))
        {
            IsBackground = true, // never keeps the process alive: the host decides when it ends
            Name = name,
        };
        thread.Start();
        return completion.Task;
    }

    /// <summary>
    /// Clears the synchronization context for the caller's scope: for the handler, and for a rebalance callback that
    /// blocks this thread while it waits for the loop's own async code (which must then not queue work for it).
    /// </summary>
    /// <returns>A scope that restores the context.</returns>
    public static ContextScope WithoutContext()
    {
        var previous = Current;
        SetSynchronizationContext(null);
        return new ContextScope(previous);
    }

    /// <inheritdoc/>
    public override void Post(SendOrPostCallback d, object? state)
    {
        try
        {
            _queue.Add((d, state));
            return;
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
            // The loop has ended and its thread is gone.
        }

        // A continuation that outlives the loop (a timer's, say) runs on the thread pool rather than never.
        ThreadPool.UnsafeQueueUserWorkItem(static s => s.Callback(s.State), (Callback: d, State: state), preferLocal: false);
    }

    /// <inheritdoc/>
    public override void Send(SendOrPostCallback d, object? state) =>
        throw new NotSupportedException("The processor's thread runs posted work only.");

    /// <inheritdoc/>
    public override SynchronizationContext CreateCopy() => this;

    /// <inheritdoc/>
    public void Dispose() => _queue.Dispose();

    private static void Pump(Func<Task> loop, TaskCompletionSource completion)
    {
        using var context = new ProcessorThread();
        SetSynchronizationContext(context);
        Task task;
        try
        {
            task = loop();
        }
        catch (Exception e)
        {
            task = Task.FromException(e);
        }

        task.ContinueWith(static (_, queue) => ((BlockingCollection<(SendOrPostCallback, object?)>)queue!).CompleteAdding(), context._queue, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        foreach (var (callback, state) in context._queue.GetConsumingEnumerable())
        {
            callback(state);
        }

        SetSynchronizationContext(null);
        if (task.IsFaulted)
        {
            completion.SetException(task.Exception!.InnerExceptions);
        }
        else if (task.IsCanceled)
        {
            completion.SetCanceled();
        }
        else
        {
            completion.SetResult();
        }
    }

    /// <summary>Restores the synchronization context <see cref="WithoutContext"/> cleared.</summary>
    internal readonly struct ContextScope(SynchronizationContext? previous) : IDisposable
    {
        /// <summary>Puts the previous context back.</summary>
        public void Dispose() => SetSynchronizationContext(previous);
    }
}
