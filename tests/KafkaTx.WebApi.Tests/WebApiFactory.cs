using KafkaTx.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using WebApi;

namespace KafkaTx.WebApi.Tests;

/// <summary>
/// The sample on a TestServer as it runs by default: no bootstrap servers, so both producers run on the in-memory Kafka
/// (UseInMemoryKafkaWhenNoBootstrapServers), whatever the environment says: an empty KAFKATX_BOOTSTRAP_SERVERS in
/// configuration means "no broker" even when the suite runs with the environment variable pointing at one.
/// </summary>
public sealed class WebApiFactory(Action<IServiceCollection>? configureServices = null) : WebApplicationFactory<Program>
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    /// <summary>The in-memory Kafka both producers run on: the application's singleton.</summary>
    public InMemoryKafkaCluster Cluster => _cluster ??= Services.GetRequiredService<InMemoryKafkaCluster>();

    private InMemoryKafkaCluster? _cluster; // kept, so that a test can read it after the host stopped

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Kafka:BootstrapServers", string.Empty);
        builder.UseSetting("KAFKATX_BOOTSTRAP_SERVERS", string.Empty);
        if (configureServices is not null)
        {
            builder.ConfigureTestServices(configureServices);
        }
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
