using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaTx.Telemetry;

namespace KafkaTx.Processing;

/// <summary>Poison records: a record that failed MaxAttempts times is dead-lettered, skipped or stops the processor, per policy.</summary>
internal sealed partial class ProcessorEngine<TKey, TValue>
{
    private async Task HandlePoisonAsync(ConsumeResult<byte[]?, byte[]?> result, RecordKey key, RecordFailure failure)
    {
        switch (_options.PoisonRecordPolicy)
        {
            case PoisonRecordPolicy.DeadLetter:
                var deadLetterTopic = _options.DeadLetterTopicFor(key.TopicPartition.Topic);
                _unit.Produce(deadLetterTopic, new Message<byte[]?, byte[]?>
                {
                    Key = result.Message.Key,
                    Value = result.Message.Value,
                    Timestamp = result.Message.Timestamp,
                    Headers = DeadLetterHeadersFor(result, key, failure),
                });
                _deadLetterTopicInTransaction = deadLetterTopic;
                _instrumentation.ProcessorRecordsDeadLettered.Add(1, _tags);
                Log.DeadLettered(_logger, Name, key.TopicPartition.Topic, key.TopicPartition.Partition.Value, key.Offset, failure.Attempts, deadLetterTopic, failure.LastError);
                break;
            case PoisonRecordPolicy.Skip:
                _instrumentation.ProcessorRecordsSkipped.Add(1, _tags);
                Log.PoisonSkipped(_logger, Name, key.TopicPartition.Topic, key.TopicPartition.Partition.Value, key.Offset, failure.Attempts, failure.LastError);
                break;
            default:
                Log.PoisonStopped(_logger, Name, key.TopicPartition.Topic, key.TopicPartition.Partition.Value, key.Offset, failure.Attempts, failure.LastError);
                await AbortAndRewindAsync("a poison record met the Stop policy").ConfigureAwait(true);
                Stop(ProcessorState.Faulted, new InvalidOperationException(
                    $"Processor '{Name}' stopped at {key}: the record failed {failure.Attempts} times and the poison record policy is Stop. Fix the handler or the record, or choose DeadLetter or Skip, then restart.",
                    failure.LastError));
                return;
        }

        _processed.Add(key);
    }

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

        headers.Add(DeadLetterHeaders.Topic, Encoding.UTF8.GetBytes(key.TopicPartition.Topic));
        headers.Add(DeadLetterHeaders.Partition, Encoding.UTF8.GetBytes(key.TopicPartition.Partition.Value.ToString(CultureInfo.InvariantCulture)));
        headers.Add(DeadLetterHeaders.Offset, Encoding.UTF8.GetBytes(key.Offset.ToString(CultureInfo.InvariantCulture)));
        headers.Add(DeadLetterHeaders.ErrorType, Encoding.UTF8.GetBytes(failure.LastError.GetType().FullName ?? failure.LastError.GetType().Name));
        headers.Add(DeadLetterHeaders.ErrorMessage, Encoding.UTF8.GetBytes(failure.LastError.Message));
        headers.Add(DeadLetterHeaders.Attempts, Encoding.UTF8.GetBytes(failure.Attempts.ToString(CultureInfo.InvariantCulture)));
        return headers;
    }
}
