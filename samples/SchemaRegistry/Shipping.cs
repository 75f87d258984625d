using Avro;
using Avro.Generic;
using Confluent.Kafka;
using KafkaTx;

namespace SchemaRegistrySample;

/// <summary>The Avro schemas of the sample: an order in, a shipment out. Generated ISpecificRecord classes work the same.</summary>
public static class Schemas
{
    public static readonly RecordSchema Order = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"orderId","type":"string"},{"name":"amount","type":"double"}]}""");

    public static readonly RecordSchema Shipment = (RecordSchema)Avro.Schema.Parse(
        """{"type":"record","name":"Shipment","namespace":"shop","fields":[{"name":"orderId","type":"string"},{"name":"status","type":"string"},{"name":"amount","type":"double"}]}""");

    public static GenericRecord NewOrder(string orderId, double amount)
    {
        var order = new GenericRecord(Order);
        order.Add("orderId", orderId);
        order.Add("amount", amount);
        return order;
    }
}

/// <summary>The output topic's name (the sample suffixes it per run) and the order that fails once.</summary>
public sealed record ShippingSettings(string ShipmentsTopic, string FailOnceFor)
{
    private int _failed;

    public bool ShouldFail(string orderId) => orderId == FailOnceFor && Interlocked.Exchange(ref _failed, 1) == 0;
}

/// <summary>
/// Turns each Avro order into an Avro shipment. KafkaTx awaits the Avro deserializer (it may fetch the order's schema
/// from the registry) before the handler runs; ProduceAsync awaits the Avro serializer (it may register the shipment's
/// schema) before the record enters the transaction.
/// </summary>
public sealed class ShipOrders(ShippingSettings settings) : ITransactionalHandler<string, GenericRecord>
{
    public async ValueTask HandleAsync(ConsumeResult<string, GenericRecord> record, ITransactionScope transaction, CancellationToken cancellationToken)
    {
        var orderId = (string)record.Message.Value["orderId"];
        var shipment = new GenericRecord(Schemas.Shipment);
        shipment.Add("orderId", orderId);
        shipment.Add("status", "shipped");
        shipment.Add("amount", (double)record.Message.Value["amount"]);
        await transaction.ProduceAsync(settings.ShipmentsTopic, new Message<string, GenericRecord> { Key = orderId, Value = shipment }, cancellationToken);

        if (settings.ShouldFail(orderId))
        {
            // After the shipment was written: the transaction aborts, and read_committed never sees that write.
            throw new TimeoutException($"warehouse timed out for {orderId}");
        }
    }
}
