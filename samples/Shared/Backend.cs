using Confluent.Kafka;

namespace KafkaTx.Samples;

/// <summary>
/// Where the sample runs: the broker given by --bootstrap-servers or KAFKATX_BOOTSTRAP_SERVERS, else librdkafka's
/// built-in mock cluster inside this process (zero setup, but no read_committed and no fencing).
/// </summary>
public sealed class Backend : IDisposable
{
    private readonly IAdminClient? _mockOwner;

    private Backend(string bootstrapServers, string description, IAdminClient? mockOwner)
    {
        BootstrapServers = bootstrapServers;
        Description = description;
        _mockOwner = mockOwner;
    }

    public string BootstrapServers { get; }

    public string Description { get; }

    public bool IsEmbedded => _mockOwner is not null;

    public static Backend Choose(string[] args)
    {
        var index = Array.IndexOf(args, "--bootstrap-servers");
        var servers = index >= 0 && index + 1 < args.Length ? args[index + 1] : Environment.GetEnvironmentVariable("KAFKATX_BOOTSTRAP_SERVERS");
        if (!string.IsNullOrWhiteSpace(servers))
        {
            return new Backend(servers, $"Kafka at {servers}", null);
        }

        // A client with test.mock.num.brokers creates an in-process cluster; its brokers' addresses are in the metadata.
        var owner = new AdminClientBuilder(new AdminClientConfig(new Dictionary<string, string>
        {
            ["bootstrap.servers"] = "embedded:9092",
            ["test.mock.num.brokers"] = "3",
        })).SetLogHandler((_, _) => { }).Build(); // librdkafka announces the mock cluster on stderr; the banner above says it
        var brokers = owner.GetMetadata(TimeSpan.FromSeconds(10)).Brokers.Select(b => $"{b.Host}:{b.Port}");
        return new Backend(string.Join(',', brokers), "embedded librdkafka mock cluster (3 brokers in this process)", owner);
    }

    public void Dispose() => _mockOwner?.Dispose();
}
