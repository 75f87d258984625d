using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using Confluent.Kafka;

namespace KafkaTx.IntegrationTests.Support;

/// <summary>
/// What a broker supports, read from its own ApiVersions answer, so that a test asserts the behaviour of the broker it
/// runs against instead of skipping: brokers from 2.4 to current Kafka run these tests.
/// </summary>
/// <remarks>
/// Confluent.Kafka does not expose the negotiated API versions, so this sends one ApiVersions v0 request over a
/// plain connection: v0 is the version every broker answers (ApiVersions is the one API whose old versions Kafka
/// never drops, since clients need it to negotiate). The test brokers listen in plaintext.
/// </remarks>
internal sealed class BrokerFeatures
{
    private const short ApiVersionsKey = 18;
    private const short InitProducerIdKey = 22;
    private const short OffsetFetchKey = 9;
    private const short ConsumerGroupHeartbeatKey = 68;

    private readonly Dictionary<short, (short Min, short Max)> _apis;

    private BrokerFeatures(Dictionary<short, (short Min, short Max)> apis) => _apis = apis;

    /// <summary>
    /// KIP-360 (Kafka 2.5, InitProducerId v3): the producer can bump its epoch after a failed transaction. Without it,
    /// librdkafka turns the producer fatal after a rejected record, and KafkaTx replaces the producer.
    /// </summary>
    public bool EpochBump => MaxVersion(InitProducerIdKey) >= 3;

    /// <summary>
    /// KIP-447 (Kafka 2.5, OffsetFetch v7 with require_stable): a read_committed consumer's committed offsets wait
    /// for pending transactional offsets. Without it, offsets committed in a transaction show a little after the commit.
    /// </summary>
    public bool StableOffsetFetch => MaxVersion(OffsetFetchKey) >= 7;

    /// <summary>
    /// KIP-848 (Kafka 4.0 GA; 3.7 and 3.8 as a preview when enabled): the broker answers ConsumerGroupHeartbeat (API 68),
    /// the consumer group protocol a processor uses with <see cref="GroupProtocol.Consumer"/>. Without it, such a
    /// consumer cannot join a group.
    /// </summary>
    public bool ConsumerGroupProtocol => MaxVersion(ConsumerGroupHeartbeatKey) >= 0;

    /// <summary>Why a test of <paramref name="protocol"/> cannot run on this broker, or null when it can.</summary>
    public string? Lacks(GroupProtocol protocol) => protocol == GroupProtocol.Consumer && !ConsumerGroupProtocol
        ? $"The broker does not answer ConsumerGroupHeartbeat (API 68), so it lacks KIP-848's consumer group protocol (Kafka 4.0 and later): the GroupProtocol.Consumer case runs only against such a broker. Broker: {this}."
        : null;

    /// <summary>The highest version of the API the broker accepts, -1 when it does not know the API.</summary>
    public int MaxVersion(short apiKey) => _apis.TryGetValue(apiKey, out var range) ? range.Max : -1;

    public override string ToString() =>
        $"InitProducerId v{MaxVersion(InitProducerIdKey)} (KIP-360 {(EpochBump ? "yes" : "no")}), OffsetFetch v{MaxVersion(OffsetFetchKey)} (KIP-447 {(StableOffsetFetch ? "yes" : "no")}), ConsumerGroupHeartbeat v{MaxVersion(ConsumerGroupHeartbeatKey)} (KIP-848 {(ConsumerGroupProtocol ? "yes" : "no")})";

    public static async Task<BrokerFeatures> DetectAsync(string bootstrapServers, CancellationToken cancellationToken = default)
    {
        var first = bootstrapServers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0];
        var colon = first.LastIndexOf(':');
        var host = first[..colon].Replace("PLAINTEXT://", string.Empty, StringComparison.OrdinalIgnoreCase);
        var port = int.Parse(first[(colon + 1)..], CultureInfo.InvariantCulture);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(30));
        using var client = new TcpClient();
        await client.ConnectAsync(host, port, deadline.Token);
        var stream = client.GetStream();
        await stream.WriteAsync(ApiVersionsRequest(), deadline.Token);

        var sizeBytes = new byte[4];
        await stream.ReadExactlyAsync(sizeBytes, deadline.Token);
        var response = new byte[BinaryPrimitives.ReadInt32BigEndian(sizeBytes)];
        await stream.ReadExactlyAsync(response, deadline.Token);
        return new BrokerFeatures(ParseApiVersionsResponse(response));
    }

    /// <summary>size, api_key 18, api_version 0, correlation_id 1, client_id "kafkatx-tests"; a v0 request has no body.</summary>
    private static byte[] ApiVersionsRequest()
    {
        const string clientId = "kafkatx-tests";
        var request = new byte[4 + 2 + 2 + 4 + 2 + clientId.Length];
        var span = request.AsSpan();
        BinaryPrimitives.WriteInt32BigEndian(span, request.Length - 4);
        BinaryPrimitives.WriteInt16BigEndian(span[4..], ApiVersionsKey);
        BinaryPrimitives.WriteInt16BigEndian(span[6..], 0);
        BinaryPrimitives.WriteInt32BigEndian(span[8..], 1);
        BinaryPrimitives.WriteInt16BigEndian(span[12..], (short)clientId.Length);
        System.Text.Encoding.ASCII.GetBytes(clientId, span[14..]);
        return request;
    }

    /// <summary>correlation_id, error_code, then [api_key min_version max_version].</summary>
    private static Dictionary<short, (short Min, short Max)> ParseApiVersionsResponse(ReadOnlySpan<byte> response)
    {
        var errorCode = BinaryPrimitives.ReadInt16BigEndian(response[4..]);
        if (errorCode != 0)
        {
            throw new InvalidOperationException($"The broker answered ApiVersions v0 with error code {errorCode}.");
        }

        var count = BinaryPrimitives.ReadInt32BigEndian(response[6..]);
        var apis = new Dictionary<short, (short, short)>(count);
        for (var i = 0; i < count; i++)
        {
            var entry = response.Slice(10 + (i * 6), 6);
            apis[BinaryPrimitives.ReadInt16BigEndian(entry)] = (BinaryPrimitives.ReadInt16BigEndian(entry[2..]), BinaryPrimitives.ReadInt16BigEndian(entry[4..]));
        }

        return apis;
    }
}
