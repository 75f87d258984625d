using Confluent.Kafka;
using KafkaTx;

namespace ConsumeTransformProduce;

/// <summary>Fails one order once, as a flaky payment gateway would, to show what an abort does.</summary>
public sealed class FailureInjection
{
    private int _failed;

    public string FailOnceFor { get; init; } = "order-007";

    public bool ShouldFail(string orderId) => orderId == FailOnceFor && Interlocked.Exchange(ref _failed, 1) == 0;
}

/// <summary>The names of the output topics (the sample suffixes them per run).</summary>
public sealed record OrderTopics(string ProcessedOrders, string AuditLog, string LedgerUpdates);

/// <summary>
/// The order processor of the transactions guide: each order from incoming-orders becomes a processed order (with
/// 8% tax), an audit entry and a ledger update, written atomically with the consumer's progress.
/// </summary>
public sealed class OrderHandler(OrderTopics topics, FailureInjection failures, TimeProvider clock) : ITransactionalHandler<string, Order>
{
    public ValueTask HandleAsync(ConsumeResult<string, Order> record, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        var order = record.Message.Value;
        transaction.Produce(topics.ProcessedOrders, new Message<string, ProcessedOrder>
        {
            Key = order.OrderId,
            Value = new ProcessedOrder(order.OrderId, "processed", order.Amount, Math.Round(order.Amount * 0.08m, 2)),
        });
        transaction.Produce(topics.AuditLog, new Message<string, AuditEntry> { Key = order.OrderId, Value = new AuditEntry("order_processed", order.OrderId, clock.GetUtcNow()) });

        if (failures.ShouldFail(order.OrderId))
        {
            // Mid-transaction: the two records above, and everything else in this transaction, are aborted; the
            // partitions are rewound, and the orders are processed again.
            throw new TimeoutException($"payment gateway timed out for {order.OrderId}");
        }

        transaction.Produce(topics.LedgerUpdates, new Message<string, LedgerUpdate> { Key = order.OrderId, Value = new LedgerUpdate(order.OrderId, order.Amount, 0m) });
        return ValueTask.CompletedTask;
    }
}
