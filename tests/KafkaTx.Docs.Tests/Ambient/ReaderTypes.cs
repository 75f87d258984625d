using System.Text.Json.Serialization;
using Confluent.Kafka;

namespace KafkaTx.Docs.Tests.Ambient.ReaderTypes;

// The reader's own types that snippets use without declaring. A snippet that declares a type of the same name gets
// its own: the global namespace's types come before imported ones.

/// <summary>An order.</summary>
public sealed record Order(string OrderId, string Sku, decimal Amount)
{
    /// <summary>The same as <see cref="OrderId"/>, as some snippets name it.</summary>
    public string Id => OrderId;
}

/// <summary>An order after processing.</summary>
public sealed record ProcessedOrder(string OrderId);

/// <summary>An order with its price.</summary>
public sealed record PricedOrder(string OrderId, decimal Price);

/// <summary>A shipment.</summary>
public sealed record Shipment(string OrderId);

/// <summary>An audit entry.</summary>
public sealed record AuditEntry(string Action);

/// <summary>An event.</summary>
public sealed record OrderPlaced(string OrderId);

/// <summary>An event.</summary>
public sealed record TaskCreated(string TaskId);

/// <summary>A payment.</summary>
public sealed record Payment(string CustomerId, decimal Amount);

/// <summary>The reader's source-generated JSON context.</summary>
[JsonSerializable(typeof(Shipment))]
[JsonSerializable(typeof(Order))]
public sealed partial class ShopJsonContext : JsonSerializerContext;

/// <summary>A service priced in one round trip.</summary>
public interface IPriceService
{
    /// <summary>Prices many SKUs at once.</summary>
    Task<Quotes> QuoteAsync(IEnumerable<string> skus, CancellationToken cancellationToken);
}

/// <summary>Prices by SKU.</summary>
public sealed class Quotes
{
    /// <summary>The order with its price.</summary>
    public PricedOrder Price(Order order) => new(order.OrderId, 0m);
}

/// <summary>A record handler the reader wrote.</summary>
public sealed class OrderHandler : ITransactionalHandler<string, string>
{
    /// <inheritdoc />
    public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}

/// <summary>A record handler the reader wrote.</summary>
public sealed class EnrichHandler : ITransactionalHandler<string, string>
{
    /// <inheritdoc />
    public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}

/// <summary>A record handler the reader wrote.</summary>
public sealed class ScoringHandler : ITransactionalHandler<string, string>
{
    /// <inheritdoc />
    public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}

/// <summary>A record handler the reader wrote.</summary>
public sealed class ShipmentHandler : ITransactionalHandler<string, string>
{
    /// <inheritdoc />
    public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
