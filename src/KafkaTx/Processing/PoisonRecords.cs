using System.Globalization;
using System.Text;
using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// What becomes of a poison record (one that failed MaxAttempts times), per <see cref="PoisonRecordPolicy"/>: written to
/// the dead-letter topic in the open transaction, skipped, or the processor stops at it. Dead-lettered and skipped
/// records join the open batch, so that their offsets commit with it.
/// </summary>
internal sealed class PoisonRecords(TransactionalProcessorOptions options, ITransactionalUnitOfWork unit, ProcessorTelemetry telemetry)
{
    /// <summary>Whether the record has failed often enough to be poison.</summary>
    public bool IsPoison(RecordFailure? failure) => failure is not null && failure.Attempts >= options.Retry.MaxAttempts;

    /// <summary>Applies the policy to the record.</summary>
    /// <returns>
    /// Null when the record joined the batch (dead-lettered or skipped); else, with the Stop policy, the failure the
    /// processor stops with, without committing past the record.
    /// </returns>
    /// <exception cref="KafkaTransactionException">Writing to the dead-letter topic failed.</exception>
    public Exception? Apply<TKey, TValue>(ConsumeResult<byte[]?, byte[]?> result, RecordKey key, RecordFailure failure, OpenBatch<TKey, TValue> batch)
    {
        switch (options.PoisonRecordPolicy)
        {
            case PoisonRecordPolicy.DeadLetter:
                var deadLetterTopic = options.DeadLetterTopicFor(key.Topic);
                unit.Produce(deadLetterTopic, new Message<byte[]?, byte[]?>
                {
                    Key = result.Message.Key,
                    Value = result.Message.Value,
                    Timestamp = result.Message.Timestamp,
                    Headers = DeadLetterHeadersFor(result, key, failure),
                });
                batch.DeadLettered(key, deadLetterTopic);
                telemetry.DeadLettered(key, failure, deadLetterTopic);
                return null;
            case PoisonRecordPolicy.Skip:
                batch.AddHandled(key);
                telemetry.PoisonSkipped(key, failure);
                return null;
            default:
                telemetry.PoisonStopped(key, failure);
                return new InvalidOperationException(
                    $"Processor '{telemetry.Name}' stopped at {key}: the record failed {failure.Attempts} times and the poison record policy is Stop. Fix the handler or the record, or choose DeadLetter or Skip, then restart.",
                    failure.LastError);
        }
    }

    /// <summary>The failure a processor stops with when writing a poison record to the dead-letter topic failed.</summary>
    public InvalidOperationException DeadLetterWriteFailed(string deadLetterTopic, KafkaTransactionException failure) => new(
        $"Processor '{telemetry.Name}' could not write a poison record to the dead-letter topic '{deadLetterTopic}' ({failure.Error.Code}: {failure.Error.Reason}). Create the topic (or allow writing to it), or choose another DeadLetterTopic or poison record policy, then restart.",
        failure);

    private static Headers DeadLetterHeadersFor(ConsumeResult<byte[]?, byte[]?> result, RecordKey key, RecordFailure failure)
    {
        var headers = new Headers();
        if (result.Message.Headers is { } original)
        {
            foreach (var header in original)
            {
                headers.Add(header.Key, header.GetValueBytes());
            }
        }

        headers.Add(DeadLetterHeaders.Topic, Encoding.UTF8.GetBytes(key.Topic));
        headers.Add(DeadLetterHeaders.Partition, Encoding.UTF8.GetBytes(key.Partition.ToString(CultureInfo.InvariantCulture)));
        headers.Add(DeadLetterHeaders.Offset, Encoding.UTF8.GetBytes(key.Offset.ToString(CultureInfo.InvariantCulture)));
        headers.Add(DeadLetterHeaders.ErrorType, Encoding.UTF8.GetBytes(failure.LastError.GetType().FullName ?? failure.LastError.GetType().Name));
        headers.Add(DeadLetterHeaders.ErrorMessage, Encoding.UTF8.GetBytes(failure.LastError.Message));
        headers.Add(DeadLetterHeaders.Attempts, Encoding.UTF8.GetBytes(failure.Attempts.ToString(CultureInfo.InvariantCulture)));
        return headers;
    }
}
