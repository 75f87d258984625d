using System.Text;
using Confluent.Kafka;
using KafkaTx;

namespace ParallelProcessing;

/// <summary>Where the scored payments go.</summary>
public sealed record ScoredPayments(string Topic);

/// <summary>
/// A fraud-scoring service across the network, simulated: each call takes 1 to 5 ms. The handler awaits it with its
/// cancellation token, so that a stop or an overrun cancels the call instead of waiting for it.
/// </summary>
public sealed class ScoringService
{
    private long _firstCallTimestamp;

    /// <summary>When the first call came (Stopwatch ticks); 0 before it: the run's clock starts there, not at the group join.</summary>
    public long FirstCallTimestamp => Interlocked.Read(ref _firstCallTimestamp);

    public async Task<int> ScoreAsync(string payment, CancellationToken cancellationToken)
    {
        Interlocked.CompareExchange(ref _firstCallTimestamp, System.Diagnostics.Stopwatch.GetTimestamp(), 0);
        await Task.Delay(TimeSpan.FromMilliseconds(1 + (4 * Random.Shared.NextDouble())), cancellationToken);
        return payment.Length * 7 % 100;
    }
}

/// <summary>
/// Scores each payment and writes "payment score" to the scored-payments topic, keyed by customer. The same handler
/// runs sequential and parallel: with MaxConcurrency above 1 and key order, payments of different customers are
/// scored at the same time, and one customer's payments still one after another, in offset order.
/// </summary>
public sealed class ScoringHandler(ScoringService scoring, ScoredPayments output) : ITransactionalHandler<string, string>
{
    public async ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        var score = await scoring.ScoreAsync(record.Message.Value, cancellationToken);

        // Only through the transaction: if the batch aborts (any handler of it failing), this record is handled again.
        transaction.Produce(output.Topic, new Message<byte[], byte[]>
        {
            Key = Encoding.UTF8.GetBytes(record.Message.Key),
            Value = Encoding.UTF8.GetBytes($"{record.Message.Value} {score}"),
        });
    }
}
