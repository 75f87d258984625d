using Confluent.Kafka;
using KafkaTx;

namespace WebApi;

/// <summary>
/// orders → shipments, exactly once: the processor commits the shipment together with the consumer's progress, so each
/// order's shipment becomes visible once, whatever fails or restarts. It may run more than once for an order (after
/// an abort the partition is rewound), so it only writes through the transaction.
/// </summary>
public sealed class ShipmentHandler(ILogger<ShipmentHandler> logger) : ITransactionalHandler<string, Order>
{
    public ValueTask HandleAsync(ConsumeResult<string, Order> record, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        var order = record.Message.Value;
        transaction.Produce(Topics.Shipments, new Message<string, Shipment>
        {
            Key = order.OrderId,
            Value = new Shipment(order.OrderId, order.CustomerId, order.Item, order.Quantity, "ready_to_ship"),
        });
        logger.LogInformation("Shipment for order {OrderId} written; visible once committed with the order's offset", order.OrderId);
        return ValueTask.CompletedTask;
    }
}
