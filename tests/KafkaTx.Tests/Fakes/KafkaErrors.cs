using Confluent.Kafka;

namespace KafkaTx.Tests.Fakes;

/// <summary>Exceptions shaped exactly as Confluent.Kafka 2.16 raises them (observed on librdkafka's mock cluster).</summary>
internal static class KafkaErrors
{
    public static KafkaException Fenced() => new(new Error(ErrorCode.Local_Fenced, "Failed to end transaction: Local: This instance has been fenced by a newer instance", true));

    public static KafkaException Fatal(ErrorCode code = ErrorCode.InvalidTxnState) => new(new Error(code, "fatal " + code, true));

    public static KafkaTxnRequiresAbortException Abortable(ErrorCode code = ErrorCode.Local_Inconsistent) => new(new Error(code, "abortable " + code));

    public static KafkaRetriableException TimedOut() => new(new Error(ErrorCode.Local_TimedOut, "Timed out waiting for operation to finish, retry call to resume"));
}
