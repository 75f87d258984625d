using Confluent.Kafka;

namespace KafkaTx.Reliability.Copying;

/// <summary>
/// The copier's handler as a batch handler (<c>--batch-handler</c>): one call per transaction, copying its records in
/// turn, each in the shape the settings name (see <see cref="CopyHandler"/>). A kill, a pause or a stop then lands in
/// the middle of a call holding many records, and the whole call's work must commit once or not at all.
/// </summary>
internal sealed class BatchCopyHandler(CopyTarget target) : ITransactionalBatchHandler<byte[], byte[]>
{
    public async ValueTask HandleAsync(IReadOnlyList<ConsumeResult<byte[], byte[]>> records, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        foreach (var record in records)
        {
            await CopyHandler.CopyAsync(target, record, transaction, cancellationToken);
        }
    }
}
