using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confluent.Kafka;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WebApi;

namespace KafkaTx.WebApi.Tests;

/// <summary>
/// Every failure ExecuteAsync can throw becomes the status samples/WebApi/README.md documents ("Errors"), through the
/// sample's exception handler, with Retry-After exactly where a retry is safe.
/// </summary>
public sealed class ErrorMappingTests
{
    /// <summary>The README's table: what is thrown, the status, Retry-After, what is visible.</summary>
    public static TheoryData<string, int, int?, string> Documented() => new()
    {
        { nameof(TransactionErrorKind.Abortable), 503, 1, "nothing" },
        { nameof(TransactionErrorKind.Retriable), 503, 5, "nothing" },
        { nameof(TransactionErrorKind.Fenced), 503, 5, "nothing" },
        { nameof(TransactionErrorKind.Fatal), 500, null, "nothing" },
        { nameof(TransactionErrorKind.Rejected), 500, null, "nothing" },
        { "Rejected (too large)", 413, null, "nothing" },
        { nameof(TransactionErrorKind.OutcomeUnknown), 500, null, "unknown" },
        { "Fenced after the commit was sent (Outcome Unknown)", 500, null, "unknown" },
        { "Fatal after the commit was sent (Outcome Unknown)", 500, null, "unknown" },
        { "Shutting down (ObjectDisposedException)", 503, 1, "nothing" },
        { "Timed out (OperationCanceledException, neither client nor host)", 503, 1, "nothing" },
        { "No serializer (InvalidOperationException)", 500, null, "nothing" },
        { "Serializer failed (JsonException)", 500, null, "nothing" },
    };

    [Fact]
    public void Every_error_kind_has_a_documented_status()
    {
        var documented = Documented().Select(row => (string)row[0]).ToHashSet();

        Enum.GetNames<TransactionErrorKind>().Should().BeSubsetOf(documented, "a new kind needs a row in the README and in the handler");
    }

    [Theory]
    [MemberData(nameof(Documented))]
    public async Task A_failure_becomes_its_documented_status(string failure, int status, int? retryAfterSeconds, string written)
    {
        await using var factory = new WebApiFactory(services => services.DecorateWebUnit((_, _, _) => throw Exception(failure)));
        using var client = factory.CreateClient();

        var response = await client.PostAsJsonAsync("/orders", OrderEndpointTests.AnOrder("o-1"));

        ((int)response.StatusCode).Should().Be(status, failure);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
        (response.Headers.RetryAfter?.Delta).Should().Be(retryAfterSeconds is { } s ? TimeSpan.FromSeconds(s) : null, "Retry-After marks exactly the failures a client may retry");

        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        problem.GetProperty("status").GetInt32().Should().Be(status);
        problem.GetProperty("written").GetString().Should().Be(written);
        problem.TryGetProperty("detail", out _).Should().BeFalse("internal messages (brokers, transactional ids) go to the log, not to the client");
        factory.Visible(Topics.Orders).Should().BeEmpty();
    }

    [Fact]
    public void A_cancellation_is_a_shutdown_when_the_host_stops_and_a_time_out_otherwise()
    {
        using var stopping = new StoppingLifetime();
        var whileStopping = new DefaultHttpContext { RequestServices = new ServiceCollection().AddSingleton<IHostApplicationLifetime>(stopping).BuildServiceProvider() };
        stopping.Stop();

        KafkaExceptionHandler.Map(new OperationCanceledException(), whileStopping).Title.Should().Contain("shutting down");
        KafkaExceptionHandler.Map(new OperationCanceledException(), new DefaultHttpContext()).Title.Should().Contain("timed out");
    }

    [Theory]
    [InlineData(ErrorCode.ProducerFenced, nameof(TransactionErrorKind.Fenced))]
    [InlineData(ErrorCode.InvalidTxnState, nameof(TransactionErrorKind.OutcomeUnknown))]
    public async Task A_commit_that_fails_after_it_was_sent_is_500_unknown_without_retry_after(ErrorCode error, string kind)
    {
        await using var factory = new WebApiFactory();
        using var client = factory.CreateClient();
        factory.Cluster.FailNextCommit("webapi-orders-0", error); // the commit request reaches the coordinator, then fails

        var response = await client.PostAsJsonAsync("/orders", OrderEndpointTests.AnOrder("o-1"));

        response.StatusCode.Should().Be(HttpStatusCode.InternalServerError, await response.Content.ReadAsStringAsync());
        response.Headers.RetryAfter.Should().BeNull("the order may have been written: a blind retry could write it twice");
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        problem.GetProperty("written").GetString().Should().Be("unknown");
        problem.GetProperty("outcome").GetString().Should().Be(nameof(TransactionOutcome.Unknown));
        problem.GetProperty("kind").GetString().Should().Be(kind);
        problem.GetProperty("title").GetString().Should().Contain("may or may not have been written");
    }

    [Fact]
    public async Task A_fenced_producer_answers_503_to_this_request_and_the_next_and_writes_nothing()
    {
        await using var factory = new WebApiFactory();
        using var client = factory.CreateClient();
        factory.Cluster.FenceProducer("webapi-orders-0"); // a newer instance took this instance's transactional.id

        var first = await client.PostAsJsonAsync("/orders", OrderEndpointTests.AnOrder("o-1"));
        var second = await client.PostAsJsonAsync("/orders", OrderEndpointTests.AnOrder("o-2"));

        first.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable, await first.Content.ReadAsStringAsync());
        second.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable, "a fenced unit refuses every later call with the same kind, mapped the same way");
        second.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(5));
        var problem = JsonDocument.Parse(await second.Content.ReadAsStringAsync()).RootElement;
        problem.GetProperty("kind").GetString().Should().Be(nameof(TransactionErrorKind.Fenced), "the later call's refusal carries the kind itself: the handler reads no state");
        factory.Visible(Topics.Orders).Should().BeEmpty();
        factory.Visible(Topics.AuditLog).Should().BeEmpty();
        (await client.GetAsync("/health")).StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable, "the fenced producer's health check is Unhealthy");
    }

    [Fact]
    public async Task A_request_cancelled_by_its_client_during_the_work_leaves_nothing_visible()
    {
        var produced = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var factory = new WebApiFactory(services => services.DecorateWebUnit((unit, work, cancellationToken) =>
            unit.ExecuteAsync(async (tx, ct) =>
            {
                await work(tx, ct);     // the sample's two records are produced...
                produced.TrySetResult();
                await Task.Delay(WebApiFactory.Deadline / 2, ct); // ...and the work waits for the request's token, as slow work
                                                                 // would (an endpoint that does not pass it on commits after this)
            }, cancellationToken)));
        using var client = factory.CreateClient();
        using var cancel = new CancellationTokenSource();
        var web = factory.Services.GetRequiredKeyedService<ITransactionalUnitOfWork>(Producers.Web);

        var request = client.PostAsJsonAsync("/orders", OrderEndpointTests.AnOrder("o-1"), cancel.Token);
        await produced.Task.WaitAsync(WebApiFactory.Deadline);
        cancel.Cancel();

        await FluentActions.Awaiting(() => request).Should().ThrowAsync<OperationCanceledException>();
        await WebApiFactory.WaitUntilAsync(() => !factory.HasOpenTransaction(Topics.Orders) && !factory.HasOpenTransaction(Topics.AuditLog) && web.State == TransactionState.Ready, "the transaction is aborted");
        factory.Cluster.ReadTopic(Topics.Orders, IsolationLevel.ReadUncommitted).Should().ContainSingle("the record was written, in the transaction that was aborted");
        factory.Visible(Topics.Orders).Should().BeEmpty();
        factory.Visible(Topics.AuditLog).Should().BeEmpty();
    }

    private static Exception Exception(string failure)
    {
        var error = new Error(ErrorCode.Local_TimedOut, "injected");
        return failure switch
        {
            "Rejected (too large)" => new KafkaTransactionException(TransactionErrorKind.Rejected, new Error(ErrorCode.MsgSizeTooLarge, "injected"), "injected", TransactionState.Ready),
            "Fenced after the commit was sent (Outcome Unknown)" => new KafkaTransactionException(TransactionErrorKind.Fenced, error, "injected", TransactionState.Fenced) { Outcome = TransactionOutcome.Unknown },
            "Fatal after the commit was sent (Outcome Unknown)" => new KafkaTransactionException(TransactionErrorKind.Fatal, error, "injected", TransactionState.Faulted) { Outcome = TransactionOutcome.Unknown },
            "Shutting down (ObjectDisposedException)" => new ObjectDisposedException("TransactionalUnitOfWork", "injected"),
            "Timed out (OperationCanceledException, neither client nor host)" => new OperationCanceledException("injected"),
            "No serializer (InvalidOperationException)" => new InvalidOperationException("No serializer is registered for WebApi.Order (injected)"),
            "Serializer failed (JsonException)" => new JsonException("injected"),
            _ => new KafkaTransactionException(Enum.Parse<TransactionErrorKind>(failure), error, "injected", TransactionState.Ready),
        };
    }

    /// <summary>An application lifetime whose stopping token the test cancels.</summary>
    private sealed class StoppingLifetime : IHostApplicationLifetime, IDisposable
    {
        private readonly CancellationTokenSource _stopping = new();

        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => _stopping.Token;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication() => _stopping.Cancel();

        public void Stop() => _stopping.Cancel();

        public void Dispose() => _stopping.Dispose();
    }
}
