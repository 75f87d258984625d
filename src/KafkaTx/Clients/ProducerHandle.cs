using Confluent.Kafka;
using KafkaTx.Telemetry;
using KafkaTx.UnitOfWork;
using Microsoft.Extensions.Logging;

namespace KafkaTx.Clients;

/// <summary>
/// One Confluent.Kafka producer (one librdkafka handle), its delivery reports, and the blocking call running on it:
/// at most one at a time, and the handle is disposed only when none runs.
/// </summary>
internal sealed class ProducerHandle(IProducer<byte[]?, byte[]?> producer, ILogger logger, string transactionalId)
{
    private readonly Lock _lock = new();
    private string? _running;
    private bool _retired;
    private bool _disposed;

    public IProducer<byte[]?, byte[]?> Producer { get; } = producer;

    public DeliveryTracker Deliveries { get; } = new();

    /// <summary>Marks a call as running on this handle; refuses it when another runs or the handle was retired.</summary>
    public void Enter(string operation)
    {
        lock (_lock)
        {
            if (_retired)
            {
                throw new ObjectDisposedException(nameof(TransactionalUnitOfWork), $"{operation} was not started: the producer of '{transactionalId}' was disposed (the unit of work was disposed, or its producer replaced) while the call that needed it was running.");
            }

            if (_running is { } other)
            {
                throw new InvalidOperationException($"{operation} was not started: {other} is still running on the producer of '{transactionalId}', and a librdkafka handle must not serve two transactional calls at once.");
            }

            _running = operation;
        }
    }

    /// <summary>The running call returned: the handle is free, and disposed now if it was retired meanwhile.</summary>
    public void Exit()
    {
        bool dispose;
        lock (_lock)
        {
            _running = null;
            dispose = _retired && !_disposed;
            _disposed |= dispose;
        }

        if (dispose)
        {
            DisposeQuietly();
        }
    }

    /// <summary>No call may start on this handle any more: it is disposed now, or when the running call returns.</summary>
    public void Retire()
    {
        bool dispose;
        lock (_lock)
        {
            if (_retired)
            {
                return;
            }

            _retired = true;
            dispose = _running is null;
            _disposed = dispose;
        }

        if (dispose)
        {
            DisposeQuietly();
        }
    }

    private void DisposeQuietly()
    {
        try
        {
            Producer.Dispose();
        }
        catch (Exception e) when (e is KafkaException or ObjectDisposedException or InvalidOperationException)
        {
            // The producer is being discarded; a failure to close it changes nothing for the caller.
            Log.ClientError(logger, transactionalId, ErrorCode.Local_Destroy, e.Message);
        }
    }
}
