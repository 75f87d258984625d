namespace KafkaTx.Processing;

/// <summary>
/// The sequential loop's wait for its handler call: unbounded while the processor runs (a slow handler holds up its
/// own batch, as it always has), but once a stop has cancelled the call (ShutdownTimeout after the stop), the call
/// gets ShutdownTimeout more, and a call still ignoring its token then is abandoned: the stop aborts its batch and
/// closes the consumer instead of waiting for ever. The abandoned call keeps the batch's DI scope, disposed when it
/// ends; its later writes are refused (no transaction is open any more, and the stopped processor begins none).
/// </summary>
internal sealed class StoppingHandlerCall(TimeSpan shutdownTimeout, ProcessorTelemetry telemetry, TimeProvider time)
{
    /// <summary>Awaits the handler's call (processor thread); one that completed at once costs nothing more.</summary>
    /// <exception cref="OperationCanceledException">The call was abandoned (on <paramref name="drainToken"/>).</exception>
    public ValueTask AwaitAsync<TKey, TValue>(ValueTask call, OpenBatch<TKey, TValue> batch, RecordKey key, CancellationToken drainToken) =>
        call.IsCompleted ? call : AwaitRunningAsync(call, batch, key, drainToken);

    private async ValueTask AwaitRunningAsync<TKey, TValue>(ValueTask call, OpenBatch<TKey, TValue> batch, RecordKey key, CancellationToken drainToken)
    {
        var started = time.GetTimestamp();
        var task = call.AsTask();

        // Each wait ends without throwing, and the call's completion is checked after it: a call that ends exactly
        // as the wait gives up has its own outcome, never the wait's (a timeout or a cancellation it did not see).
        await task.WaitAsync(drainToken).ConfigureAwait(ConfigureAwaitOptions.ContinueOnCapturedContext | ConfigureAwaitOptions.SuppressThrowing);
        if (!task.IsCompleted)
        {
            // The drain was cancelled, and so is the call: it gets ShutdownTimeout to end.
            await task.WaitAsync(shutdownTimeout, time, CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.ContinueOnCapturedContext | ConfigureAwaitOptions.SuppressThrowing);
        }

        if (task.IsCompleted)
        {
            await task.ConfigureAwait(true); // its outcome: done, or what it threw
            return;
        }

        // It ignores its token.
        telemetry.HandlerCallAbandoned(key, time.GetElapsedTime(started), shutdownTimeout, "the processor stopped");
        _ = DisposeWhenEndedAsync(task, batch.DetachScope(0), key, started);
        throw new OperationCanceledException($"The handler of {key} ignored its cancellation for {shutdownTimeout.TotalMilliseconds:0} ms as the processor stopped; it is abandoned.", drainToken);
    }

    private async Task DisposeWhenEndedAsync(Task call, IAsyncDisposable? scope, RecordKey key, long started)
    {
        await call.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing); // its outcome no longer matters
        Exception? disposeError = null;
        try
        {
            if (scope is not null)
            {
                await scope.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            disposeError = e;
        }

        telemetry.AbandonedCallEnded(key, time.GetElapsedTime(started), disposeError);
    }
}
