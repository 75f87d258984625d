using KafkaTx.Docs.Tests.Ambient.ReaderTypes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

#pragma warning disable CA1707, CA2211, IDE1006 // named as the snippets' variables are, for them to bind to

namespace KafkaTx.Docs.Tests.Ambient;

/// <summary>
/// The variables a snippet takes from the reader's code around it (the host builder, an injected unit of work, the
/// request's token). Only compiled against, never run.
/// </summary>
public static class SnippetContext
{
    /// <summary>The application's builder (ASP.NET Core's; a generic host's has the same Services and Configuration).</summary>
    public static WebApplicationBuilder builder = null!;

    /// <summary>The built web application.</summary>
    public static WebApplication app = null!;

    /// <summary>A service collection being configured.</summary>
    public static IServiceCollection services = null!;

    /// <summary>A built host.</summary>
    public static IHost host = null!;

    /// <summary>A built service provider.</summary>
    public static IServiceProvider provider = null!;

    /// <summary>An injected unit of work.</summary>
    public static ITransactionalUnitOfWork kafka = null!;

    /// <summary>An injected pool of units of work.</summary>
    public static ITransactionalUnitOfWorkPool pool = null!;

    /// <summary>The caller's token (an HTTP request's, a worker's stopping token).</summary>
    public static CancellationToken cancellationToken;

    /// <summary>The pod's name, as a Kubernetes StatefulSet gives it.</summary>
    public static string podName = "orders-0";

    /// <summary>The reader's transformation of a text value.</summary>
    public static string Process(string value) => value;

    /// <summary>The reader's transformation of an order.</summary>
    public static ProcessedOrder Process(Order order) => new(order.OrderId);
}
