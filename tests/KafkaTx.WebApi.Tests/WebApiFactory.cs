using KafkaTx.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using WebApi;

namespace KafkaTx.WebApi.Tests;

/// <summary>
/// The sample on a TestServer, with both producers on an in-memory Kafka of the test's own, whatever the environment
/// says (KAFKATX_BOOTSTRAP_SERVERS points the whole suite at a broker; these tests stay in memory). Everything else is
/// the sample's Program as it runs.
/// </summary>
public sealed class WebApiFactory(Action<IServiceCollection>? configureServices = null) : WebApplicationFactory<Program>
{
    public InMemoryKafkaCluster Cluster { get; } = new();

    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Kafka:BootstrapServers", string.Empty);
        builder.ConfigureTestServices(services =>
        {
            // Reopens the sample's two builders (registering nothing twice) to pin their backend to this test's cluster.
            services.AddKafkaTransactions(Producers.Web, _ => { }).UseInMemoryKafka(Cluster);
            services.AddKafkaTransactions(Producers.Shipping, _ => { }).UseInMemoryKafka(Cluster);
            configureServices?.Invoke(services);
        });
    }

    public IReadOnlyList<InMemoryRecord> Visible(string topic) => Cluster.ReadTopic(topic);

    /// <summary>Whether a transaction is still open on a topic (read_committed readers wait behind it).</summary>
    public bool HasOpenTransaction(string topic) =>
        Enumerable.Range(0, Cluster.PartitionCount(topic)).Any(p =>
            Cluster.LastStableOffset(new(topic, p)) != Cluster.HighWatermark(new(topic, p)));

    /// <summary>Polls until <paramref name="condition"/> holds, failing with <paramref name="what"/> at the deadline.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        while (!condition())
        {
            if (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"Timed out after {Deadline.TotalSeconds} s waiting until {what}.");
            }

            await Task.Delay(20, CancellationToken.None);
        }
    }
}
