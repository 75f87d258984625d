using Confluent.Kafka;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Clients;

/// <summary>
/// Runs a blocking librdkafka call (init, commit, abort, send offsets) on the thread pool, in slices of at most
/// <see cref="MaxBlockingSlice"/> so that cancellation is honoured between them, repeating it while it fails with a
/// retriable error and its budget allows. librdkafka resumes a call that timed out, so a new slice continues where the
/// last one stopped. The handle it runs on is busy meanwhile (<see cref="ProducerHandle.Enter"/>).
/// </summary>
internal sealed class BlockingCallRunner(TimeProvider time, ILogger logger, string transactionalId)
{
    private static readonly TimeSpan MaxBlockingSlice = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RetriableCallBackoff = TimeSpan.FromMilliseconds(50);

    /// <summary>How long past its own timeout a blocking librdkafka call may run before the producer is given up as stuck.</summary>
    private static readonly TimeSpan StuckCallGrace = TimeSpan.FromSeconds(10);

    public async Task RunAsync(ProducerHandle handle, string operation, Action<IProducer<byte[]?, byte[]?>, TimeSpan> call, TimeSpan budget, CancellationToken cancellationToken)
    {
        handle.Enter(operation);
        var stillRunning = false;
        try
        {
            var started = time.GetTimestamp();
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var remaining = budget - time.GetElapsedTime(started);
                var slice = remaining < MaxBlockingSlice ? remaining : MaxBlockingSlice;
                if (slice < TimeSpan.FromMilliseconds(1))
                {
                    slice = TimeSpan.FromMilliseconds(1);
                }

                var running = Task.Run(() => call(handle.Producer, slice), CancellationToken.None);
                try
                {
                    await running.WaitAsync(slice + StuckCallGrace, time, CancellationToken.None).ConfigureAwait(false);
                    return;
                }
                catch (TimeoutException)
                {
                    // librdkafka did not honour its own timeout (seen with a group coordinator that went away during
                    // SendOffsetsToTransaction). Waiting longer could hang the caller for ever: the producer is given up as
                    // broken, which the unit heals by replacing it; its InitTransactions aborts the transaction. The call
                    // keeps the handle busy until it returns, so the handle is disposed then, if ever.
                    Log.BlockingCallStuck(logger, operation, transactionalId, (long)StuckCallGrace.TotalMilliseconds, (long)slice.TotalMilliseconds);
                    stillRunning = true;
                    _ = running.ContinueWith(
                        static (stuck, state) =>
                        {
                            _ = stuck.Exception; // observed: nobody waits for it any more
                            ((ProducerHandle)state!).Exit();
                        },
                        handle,
                        CancellationToken.None,
                        TaskContinuationOptions.None,
                        TaskScheduler.Default);
                    throw new KafkaException(new Error(ErrorCode.Local_TimedOut, $"{operation} did not return within {StuckCallGrace.TotalSeconds:F0} s after its timeout; the producer was given up as stuck", true));
                }
                catch (KafkaException e) when (TransactionErrorClassifier.Classify(e.Error) == TransactionErrorKind.Retriable)
                {
                    if (time.GetElapsedTime(started) >= budget)
                    {
                        throw;
                    }

                    Log.RetryingCall(logger, operation, transactionalId, e.Error.Code);
                    if (e.Error.Code != ErrorCode.Local_TimedOut)
                    {
                        // Not a slice running out but an answer: pause briefly instead of asking again at once.
                        await Task.Delay(RetriableCallBackoff, time, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
        }
        finally
        {
            if (!stillRunning)
            {
                handle.Exit();
            }
        }
    }
}
