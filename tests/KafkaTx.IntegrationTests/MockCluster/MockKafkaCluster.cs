using System.Reflection;
using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace KafkaTx.IntegrationTests.MockCluster;

/// <summary>
/// librdkafka's in-process mock cluster, reached through the real Confluent.Kafka client, with its fault-injection
/// API (rdkafka_mock.h). Each instance is a separate cluster on loopback ports, so tests do not share injected errors.
/// It does not emulate fencing or read_committed (see ../shared/notes/test-backends.md).
/// </summary>
internal sealed class MockKafkaCluster : IDisposable
{
    public const int BrokerCount = 3;

    private readonly IAdminClient _owner;
    private readonly IntPtr _cluster;

    public MockKafkaCluster()
    {
        // The owning client creates the cluster and keeps it alive; other clients connect to its brokers.
        _owner = new AdminClientBuilder(new AdminClientConfig(new Dictionary<string, string>
        {
            ["bootstrap.servers"] = "unused:9092",
            ["test.mock.num.brokers"] = BrokerCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
        })).SetLogHandler((_, _) => { }).Build(); // silences librdkafka's "mock cluster enabled" banner on stderr
        NativeMock.EnsureResolver();
        _cluster = NativeMock.rd_kafka_handle_mock_cluster(RawHandle(_owner));
        if (_cluster == IntPtr.Zero)
        {
            throw new InvalidOperationException("librdkafka did not create a mock cluster for test.mock.num.brokers.");
        }

        BootstrapServers = Marshal.PtrToStringAnsi(NativeMock.rd_kafka_mock_cluster_bootstraps(_cluster))
            ?? throw new InvalidOperationException("The mock cluster has no bootstrap servers.");
    }

    public string BootstrapServers { get; }

    /// <summary>The next requests of this API (cluster-wide) fail with these errors, one per request.</summary>
    public void PushRequestErrors(KafkaApi api, params ErrorCode[] errors) =>
        NativeMock.rd_kafka_mock_push_request_errors_array(_cluster, (short)api, (UIntPtr)errors.Length, errors.Select(e => (int)e).ToArray());

    /// <summary>Creates a topic (the mock auto-creates topics on produce, but offsets for a missing topic are refused).</summary>
    public void CreateTopic(string topic, int partitions = 4) => Check(NativeMock.rd_kafka_mock_topic_create(_cluster, topic, partitions, 1));

    public void ClearRequestErrors(KafkaApi api) => NativeMock.rd_kafka_mock_clear_request_errors(_cluster, (short)api);

    /// <summary>Metadata and AddPartitionsToTxn for this topic answer with the error, until cleared with NoError.</summary>
    public void SetTopicError(string topic, ErrorCode error) => NativeMock.rd_kafka_mock_topic_set_error(_cluster, topic, (int)error);

    public void SetBrokerDown(int brokerId) => Check(NativeMock.rd_kafka_mock_broker_set_down(_cluster, brokerId));

    public void SetBrokerUp(int brokerId) => Check(NativeMock.rd_kafka_mock_broker_set_up(_cluster, brokerId));

    /// <summary>Takes every broker down: no coordinator, no leader, until <see cref="SetAllBrokersUp"/>.</summary>
    public void SetAllBrokersDown()
    {
        for (var broker = 1; broker <= BrokerCount; broker++)
        {
            SetBrokerDown(broker);
        }
    }

    public void SetAllBrokersUp()
    {
        for (var broker = 1; broker <= BrokerCount; broker++)
        {
            SetBrokerUp(broker);
        }
    }

    /// <summary>Moves the transaction coordinator of a transactional.id to a broker.</summary>
    public void SetTransactionCoordinator(string transactionalId, int brokerId) =>
        Check(NativeMock.rd_kafka_mock_coordinator_set(_cluster, "transaction", transactionalId, brokerId));

    /// <summary>Moves the group coordinator of a consumer group to a broker.</summary>
    public void SetGroupCoordinator(string groupId, int brokerId) =>
        Check(NativeMock.rd_kafka_mock_coordinator_set(_cluster, "group", groupId, brokerId));

    /// <summary>Every request to the broker takes this long to answer (a slow or distant broker).</summary>
    public void SetBrokerRoundTrip(int brokerId, TimeSpan rtt) =>
        Check(NativeMock.rd_kafka_mock_broker_set_rtt(_cluster, brokerId, (int)rtt.TotalMilliseconds));

    /// <summary>Makes a broker the leader of a partition.</summary>
    public void SetPartitionLeader(string topic, int partition, int brokerId) =>
        Check(NativeMock.rd_kafka_mock_partition_set_leader(_cluster, topic, partition, brokerId));

    public void Dispose() => _owner.Dispose();

    private static IntPtr RawHandle(IClient client)
    {
        // Confluent.Kafka keeps the rd_kafka_t* in a non-public SafeHandle; the mock API needs the raw pointer.
        var property = typeof(Handle).GetProperty("LibrdkafkaHandle", BindingFlags.NonPublic | BindingFlags.Instance)
            ?? throw new InvalidOperationException("Confluent.Kafka's Handle.LibrdkafkaHandle was not found; this Confluent.Kafka version hides it differently.");
        var safeHandle = (SafeHandle)property.GetValue(client.Handle)!;
        return safeHandle.DangerousGetHandle();
    }

    private static void Check(int error)
    {
        if (error != 0)
        {
            throw new InvalidOperationException($"The mock cluster refused the call: {(ErrorCode)error}.");
        }
    }
}

/// <summary>Kafka protocol API keys used for fault injection.</summary>
public enum KafkaApi : short
{
    Produce = 0,
    InitProducerId = 22,
    AddPartitionsToTxn = 24,
    AddOffsetsToTxn = 25,
    EndTxn = 26,
    TxnOffsetCommit = 28,
    ConsumerGroupHeartbeat = 68,
}

#pragma warning disable SA1300, CA5392, CA1401 // native names as librdkafka spells them
internal static partial class NativeMock
{
    private const string Library = "librdkafka-mock";
    private static int s_resolverSet;

    /// <summary>
    /// Binds the imports to the librdkafka that Confluent.Kafka loaded (on Debian the centos8 build, since the default
    /// one needs libsasl2.so.3), found in /proc/self/maps once a client exists.
    /// </summary>
    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref s_resolverSet, 1) == 1)
        {
            return;
        }

        NativeLibrary.SetDllImportResolver(typeof(NativeMock).Assembly, (name, _, _) =>
        {
            if (name != Library)
            {
                return IntPtr.Zero;
            }

            var path = File.ReadLines("/proc/self/maps")
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(fields => fields.Length >= 6 && fields[5].Contains("librdkafka", StringComparison.Ordinal))
                .Select(fields => fields[5])
                .FirstOrDefault()
                ?? throw new DllNotFoundException("librdkafka is not loaded in this process: create a Confluent.Kafka client first.");
            return NativeLibrary.Load(path);
        });
    }

    [LibraryImport(Library)]
    internal static partial IntPtr rd_kafka_handle_mock_cluster(IntPtr rk);

    [LibraryImport(Library)]
    internal static partial IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr cluster);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_push_request_errors_array(IntPtr cluster, short apiKey, UIntPtr count, [In] int[] errors);

    [LibraryImport(Library)]
    internal static partial void rd_kafka_mock_clear_request_errors(IntPtr cluster, short apiKey);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void rd_kafka_mock_topic_set_error(IntPtr cluster, string topic, int error);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_mock_topic_create(IntPtr cluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(Library)]
    internal static partial int rd_kafka_mock_broker_set_down(IntPtr cluster, int brokerId);

    [LibraryImport(Library)]
    internal static partial int rd_kafka_mock_broker_set_up(IntPtr cluster, int brokerId);

    [LibraryImport(Library)]
    internal static partial int rd_kafka_mock_broker_set_rtt(IntPtr cluster, int brokerId, int rttMs);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_mock_partition_set_leader(IntPtr cluster, string topic, int partition, int brokerId);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_mock_coordinator_set(IntPtr cluster, string keyType, string key, int brokerId);
}
#pragma warning restore SA1300, CA5392, CA1401
