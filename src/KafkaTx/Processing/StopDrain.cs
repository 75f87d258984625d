namespace KafkaTx.Processing;

/// <summary>
/// The token of the handlers and of the commit when stopping: cancelled only <see cref="TransactionalProcessorOptions.ShutdownTimeout"/>
/// after the stop, so that the handler in flight may finish and its batch commit.
/// </summary>
internal sealed class StopDrain : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly CancellationTokenRegistration _onStop;

    public StopDrain(TimeSpan shutdownTimeout, TimeProvider time, CancellationToken stoppingToken)
    {
        _source = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _onStop = stoppingToken.Register(static state =>
        {
            var (source, timeout) = ((CancellationTokenSource, TimeSpan))state!;
            try
            {
                source.CancelAfter(timeout);
            }
            catch (ObjectDisposedException)
            {
                // The loop ended first.
            }
        }, (_source, shutdownTimeout));
    }

    public CancellationToken Token => _source.Token;

    public void Dispose()
    {
        _onStop.Dispose();
        _source.Dispose();
    }
}
