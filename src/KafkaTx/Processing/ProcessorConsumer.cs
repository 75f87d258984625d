using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// The processor's consumer, from creation to close. It creates the consumer and subscribes it, and creates it again when the group refused its static member
/// because the <c>group.instance.id</c> is still held (UNRELEASED_INSTANCE_ID). With the consumer protocol (KIP-848)
/// the member that joins with a held instance id is the one refused, not the holder: after a restart, the previous
/// incarnation holds it until its session expires on the broker. librdkafka makes the refusal a fatal consumer error, so
/// the consumer is replaced, after a delay growing from 0.5 s to 5 s, until the old member is gone.
/// </summary>
internal sealed class ProcessorConsumer(
    TransactionalProcessorOptions options,
    KafkaTransactionsOptions producerOptions,
    IKafkaClientFactory clientFactory,
    RebalanceHandler rebalance,
    ProcessorTelemetry telemetry,
    TimeProvider time)
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(5);

    private int _refusals;

    public IConsumer<byte[]?, byte[]?> Subscribe()
    {
        var config = ProcessorConsumerConfig.Build(options, producerOptions);
        var consumer = clientFactory.CreateConsumer(config, rebalance.EventHandlers());
        consumer.Subscribe(options.Topics);
        return consumer;
    }

    /// <summary>
    /// Whether the failure is a refused join that joining again fixes: the group refused the static member's instance
    /// id, and the consumer holds nothing (no partitions, no open transaction) that replacing it would lose. Anything
    /// else stays a failure of the processor.
    /// </summary>
    public static bool CanJoinAgain(Exception failure, IConsumer<byte[]?, byte[]?> consumer, bool batchOpen) =>
        failure is ConsumeException { Error: { } error }
        && TransactionErrorClassifier.IsUnreleasedInstanceId(error.Code)
        && !batchOpen
        && consumer.Assignment.Count == 0;

    /// <summary>Waits, disposes the refused consumer and subscribes a new one.</summary>
    public async Task<IConsumer<byte[]?, byte[]?>> JoinAgainAsync(IConsumer<byte[]?, byte[]?> refused, CancellationToken cancellationToken)
    {
        _refusals++;
        var delay = TimeSpan.FromTicks(Math.Min(FirstDelay.Ticks << Math.Min(_refusals - 1, 4), MaxDelay.Ticks));
        telemetry.JoinRefused(ProcessorConsumerConfig.Build(options, producerOptions).GroupInstanceId, delay, _refusals);

        // Waits first: a stop meanwhile leaves the refused consumer to the loop's shutdown, which closes it as any other.
        await Task.Delay(delay, time, cancellationToken).ConfigureAwait(true);
        try
        {
            refused.Close(); // librdkafka made the consumer fatal: Close reports it again, and there is no group to leave
        }
        catch (Exception e) when (e is KafkaException or InvalidOperationException)
        {
            // Expected for a fatal consumer; nothing was assigned, so nothing is lost.
        }
        finally
        {
            refused.Dispose();
            telemetry.ConsumerClosed();
        }

        return Subscribe();
    }

    /// <summary>Leaves the group now, so that the partitions move without waiting for a session timeout, and disposes the consumer.</summary>
    public void Close(IConsumer<byte[]?, byte[]?> consumer)
    {
        try
        {
            consumer.Close();
        }
        catch (Exception e) when (e is KafkaException or InvalidOperationException)
        {
            var error = (e as KafkaException)?.Error;
            telemetry.ConsumerError(error ?? new Error(ErrorCode.Local_State, e.Message));
        }
        finally
        {
            consumer.Dispose();
            telemetry.ConsumerClosed();
        }
    }
}
