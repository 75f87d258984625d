using Confluent.Kafka;
using KafkaTx;
using Microsoft.AspNetCore.Http.HttpResults;

namespace WebApi;

/// <summary>The topics of the sample. On a broker, create them first (see README.md); in memory, Program.cs does.</summary>
public static class Topics
{
    public const string Orders = "orders";
    public const string AuditLog = "audit-log";
    public const string Shipments = "shipments";

    public static readonly string[] All = [Orders, AuditLog, Shipments];
}

/// <summary>The names of the sample's two producers (each its own transactional.id).</summary>
public static class Producers
{
    /// <summary>POST /orders writes through this one; concurrent requests queue on it.</summary>
    public const string Web = "web";

    /// <summary>The shipping processor's own: a processor owns its producer, and nothing else may use it.</summary>
    public const string Shipping = "shipping";
}

/// <summary>What a client posts. Every field is nullable so that a missing one is reported by name, not as a JSON error.</summary>
public sealed record OrderRequest(string? OrderId, string? CustomerId, string? Item, int? Quantity);

public sealed record Order(string OrderId, string CustomerId, string Item, int Quantity);

public sealed record AuditEntry(string Action, string OrderId, DateTimeOffset At);

public sealed record Shipment(string OrderId, string CustomerId, string Item, int Quantity, string Status);

public static class OrderEndpoint
{
    /// <summary>
    /// POST /orders: 400 with every field error and nothing written, or the order and its audit record in one
    /// transaction and 202. Failures are thrown and mapped to a status in one place, <see cref="KafkaExceptionHandler"/>.
    /// </summary>
    /// <param name="request">The body.</param>
    /// <param name="kafka">The "web" producer, never the processor's.</param>
    /// <param name="clock">The time of the audit record.</param>
    /// <param name="cancellationToken">HttpContext.RequestAborted: a client that goes away before the commit is sent aborts the transaction.</param>
    public static async Task<Results<Accepted<Order>, ValidationProblem>> PostAsync(
        OrderRequest request,
        [FromKeyedServices(Producers.Web)] ITransactionalUnitOfWork kafka,
        TimeProvider clock,
        CancellationToken cancellationToken)
    {
        if (Validate(request) is { Count: > 0 } errors)
        {
            return TypedResults.ValidationProblem(errors); // before any transaction: nothing is written
        }

        var order = new Order(request.OrderId!, request.CustomerId!, request.Item!, request.Quantity!.Value);

        // Both records become visible to read_committed consumers together, or neither does. The work may run more
        // than once (an abortable failure runs it again in a new transaction), so it only writes.
        await kafka.ExecuteAsync(tx =>
        {
            tx.Produce(Topics.Orders, new Message<string, Order> { Key = order.OrderId, Value = order });
            tx.Produce(Topics.AuditLog, new Message<string, AuditEntry> { Key = order.OrderId, Value = new AuditEntry("order_received", order.OrderId, clock.GetUtcNow()) });
        }, cancellationToken);

        return TypedResults.Accepted($"/orders/{Uri.EscapeDataString(order.OrderId)}", order);
    }

    /// <summary>Every problem of the request at once, by field name as the client sent it (camelCase).</summary>
    public static Dictionary<string, string[]> Validate(OrderRequest request)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(request.OrderId))
        {
            errors["orderId"] = ["Required: the client's id for the order (the record's key, so one order's records stay in order)."];
        }
        else if (request.OrderId.Length > 64)
        {
            errors["orderId"] = ["At most 64 characters."];
        }

        if (string.IsNullOrWhiteSpace(request.CustomerId))
        {
            errors["customerId"] = ["Required."];
        }

        if (string.IsNullOrWhiteSpace(request.Item))
        {
            errors["item"] = ["Required."];
        }

        if (request.Quantity is not (>= 1 and <= 1000))
        {
            errors["quantity"] = ["Required: a whole number from 1 to 1000."];
        }

        return errors;
    }
}
