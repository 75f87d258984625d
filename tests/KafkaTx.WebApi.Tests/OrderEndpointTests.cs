using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using WebApi;

namespace KafkaTx.WebApi.Tests;

/// <summary>POST /orders, /health and the shipping processor, through HTTP on the sample as it runs.</summary>
public sealed class OrderEndpointTests : IAsyncLifetime
{
    private readonly WebApiFactory _factory = new();
    private HttpClient _client = null!;

    public Task InitializeAsync()
    {
        _client = _factory.CreateClient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    internal static object AnOrder(string id) => new { orderId = id, customerId = "c-7", item = "book", quantity = 2 };

    [Fact]
    public async Task Post_writes_the_order_and_its_audit_record_together_and_answers_202()
    {
        var response = await _client.PostAsJsonAsync("/orders", AnOrder("o-1"));

        response.StatusCode.Should().Be(HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        response.Headers.Location!.ToString().Should().Be("/orders/o-1");
        var order = _factory.Visible(Topics.Orders).Should().ContainSingle().Subject;
        order.KeyText.Should().Be("o-1");
        JsonDocument.Parse(order.ValueText!).RootElement.GetProperty("quantity").GetInt32().Should().Be(2);
        var audit = _factory.Visible(Topics.AuditLog).Should().ContainSingle().Subject;
        audit.KeyText.Should().Be("o-1");
        audit.ValueText.Should().Contain("\"action\":\"order_received\"");
        _factory.HasOpenTransaction(Topics.Orders).Should().BeFalse("the request returned after its commit");
    }

    [Fact]
    public async Task A_bad_order_is_400_with_every_field_error_and_nothing_is_written()
    {
        var response = await _client.PostAsJsonAsync("/orders", new { orderId = " ", quantity = 0 });

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
        var errors = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
        errors.EnumerateObject().Select(e => e.Name).Should().BeEquivalentTo("orderId", "customerId", "item", "quantity");
        NothingWritten();
    }

    [Fact]
    public async Task A_body_that_is_not_json_is_400_problem_details_and_nothing_is_written()
    {
        using var content = new StringContent("{\"orderId\":", System.Text.Encoding.UTF8, "application/json");
        var response = await _client.PostAsync("/orders", content);

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        problem.GetProperty("written").GetString().Should().Be("nothing");
        NothingWritten();
    }

    [Fact]
    public async Task The_processor_writes_exactly_one_shipment_per_order()
    {
        const int Orders = 12;
        var ids = Enumerable.Range(0, Orders).Select(i => $"o-{i:D2}").ToList();
        var responses = await Task.WhenAll(ids.Select(id => _client.PostAsJsonAsync("/orders", AnOrder(id))));
        responses.Should().OnlyContain(r => r.StatusCode == HttpStatusCode.Accepted);

        var processor = _factory.Services.GetRequiredKeyedService<ITransactionalProcessor>(Producers.Shipping);
        await WebApiFactory.WaitUntilAsync(() => processor.CommittedRecords >= Orders, $"the processor committed {Orders} orders (it has {processor.CommittedRecords})");

        var shipments = _factory.Visible(Topics.Shipments);
        shipments.Select(s => s.KeyText).Should().BeEquivalentTo(ids, "one shipment per order, none twice");
        shipments.Should().OnlyContain(s => s.ValueText!.Contains("\"status\":\"ready_to_ship\""));
        processor.CommittedRecords.Should().Be(Orders);
    }

    [Fact]
    public async Task Health_is_healthy_with_both_producers_running()
    {
        var response = await _client.GetAsync("/health");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        (await response.Content.ReadAsStringAsync()).Should().Be("Healthy");
    }

    [Fact]
    public async Task The_web_producer_is_initialized_before_the_first_request_and_is_not_the_processors()
    {
        var web = _factory.Services.GetRequiredKeyedService<ITransactionalUnitOfWork>(Producers.Web);
        var processor = _factory.Services.GetRequiredKeyedService<ITransactionalProcessor>(Producers.Shipping);

        web.State.Should().Be(TransactionState.Ready, "InitializeOnStart ran InitTransactions while the host started");
        web.TransactionalId.Should().Be("webapi-orders-0");
        await WebApiFactory.WaitUntilAsync(() => processor.State == ProcessorState.Running, "the processor runs");
        processor.TransactionalId.Should().Be("webapi-shipping-0", "resolved when the processor started");
        processor.TransactionalId.Should().NotBe(web.TransactionalId, "the processor writes through a producer of its own");
        FluentActions.Invoking(() => _factory.Services.GetRequiredKeyedService<ITransactionalUnitOfWork>(Producers.Shipping))
            .Should().Throw<InvalidOperationException>("a processor owns its producer: the sample writes through a second one")
            .WithMessage("*owned by the transactional processor 'shipping'*");
    }

    [Fact]
    public async Task The_host_stops_cleanly_leaving_no_transaction_open()
    {
        (await _client.PostAsJsonAsync("/orders", AnOrder("o-1"))).StatusCode.Should().Be(HttpStatusCode.Accepted);
        var processor = _factory.Services.GetRequiredKeyedService<ITransactionalProcessor>(Producers.Shipping);
        await WebApiFactory.WaitUntilAsync(() => processor.CommittedRecords >= 1, "the order is shipped");
        var web = _factory.Services.GetRequiredKeyedService<ITransactionalUnitOfWork>(Producers.Web);
        _ = _factory.Cluster;

        // The processor's own bound on a stop: how long it waits for a handler in flight (none here) and its last commit.
        var shutdownTimeout = _factory.Services.GetRequiredService<IOptionsMonitor<TransactionalProcessorOptions>>().Get(Producers.Shipping).ShutdownTimeout;
        var stopping = System.Diagnostics.Stopwatch.StartNew();
        await _factory.DisposeAsync();

        stopping.Elapsed.Should().BeLessThan(shutdownTimeout, "nothing was in flight, so the stop needs none of its ShutdownTimeout");
        processor.State.Should().Be(ProcessorState.Stopped);
        processor.Failure.Should().BeNull();
        web.State.Should().Be(TransactionState.Disposed);
        foreach (var topic in Topics.All)
        {
            _factory.HasOpenTransaction(topic).Should().BeFalse($"nothing is left open on {topic}");
        }
    }

    private void NothingWritten()
    {
        // Not even aborted records: the request was refused before any transaction began.
        foreach (var topic in Topics.All)
        {
            _factory.Cluster.ReadTopic(topic, IsolationLevel.ReadUncommitted).Should().BeEmpty($"nothing was written to {topic}");
        }
    }
}
