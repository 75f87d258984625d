using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Confluent.Kafka;

namespace KafkaTx.Tests.Serialization;

public sealed record Order(string OrderId, decimal Amount);

/// <summary>Source-generated metadata, as a trimmed or AOT application has it.</summary>
[JsonSerializable(typeof(Order))]
internal sealed partial class OrderJsonContext : JsonSerializerContext;

public class KafkaJsonSerdeTests
{
    private static readonly SerializationContext Value = new(MessageComponentType.Value, "orders");
    private static readonly SerializationContext Key = new(MessageComponentType.Key, "orders");

    [Fact]
    public void By_default_it_writes_and_reads_the_web_defaults_camel_case()
    {
        var serde = new KafkaJsonSerde<Order>();

        var bytes = serde.Serialize(new Order("o-1", 12.5m), Value);

        Encoding.UTF8.GetString(bytes).Should().Be("""{"orderId":"o-1","amount":12.5}""");
        serde.Deserialize("""{"OrderId":"o-2","amount":"3"}"""u8, isNull: false, Value).Should().Be(new Order("o-2", 3m), "web defaults read case-insensitively, and numbers from strings");
    }

    [Fact]
    public void It_uses_the_options_it_is_given()
    {
        var serde = new KafkaJsonSerde<Order>(new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower });

        Encoding.UTF8.GetString(serde.Serialize(new Order("o-1", 1m), Value)).Should().Be("""{"order_id":"o-1","amount":1}""");
    }

    [Fact]
    public void It_takes_source_generated_metadata_directly_or_through_the_options()
    {
        var fromTypeInfo = new KafkaJsonSerde<Order>(OrderJsonContext.Default.Order);
        var fromOptions = new KafkaJsonSerde<Order>(new JsonSerializerOptions { TypeInfoResolver = OrderJsonContext.Default });
        var order = new Order("o-1", 2m);

        fromTypeInfo.Deserialize(fromTypeInfo.Serialize(order, Value), isNull: false, Value).Should().Be(order);
        fromOptions.Deserialize(fromOptions.Serialize(order, Value), isNull: false, Value).Should().Be(order);
    }

    [Fact]
    public void Options_that_cannot_describe_the_type_fail_when_the_serde_is_created_not_at_the_first_record()
    {
        var act = () => new KafkaJsonSerde<Uri>(new JsonSerializerOptions { TypeInfoResolver = OrderJsonContext.Default });

        act.Should().Throw<NotSupportedException>().Which.Message.Should().Contain("System.Uri").And.Contain("JsonSerializable");
    }

    [Fact]
    public void Kafka_null_is_null_both_ways()
    {
        var serde = new KafkaJsonSerde<Order?>();

        serde.Serialize(null, Value).Should().BeNull("a null value is Kafka's null (a tombstone), not the text null");
        serde.Deserialize(ReadOnlySpan<byte>.Empty, isNull: true, Value).Should().BeNull();
        new KafkaJsonSerde<int?>().Deserialize(ReadOnlySpan<byte>.Empty, isNull: true, Key).Should().BeNull();
    }

    [Fact]
    public void Kafka_null_for_a_non_nullable_value_type_is_refused_with_what_to_declare()
    {
        var act = () => new KafkaJsonSerde<int>().Deserialize(ReadOnlySpan<byte>.Empty, isNull: true, Key);

        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain("key is null").And.Contain("Int32?");
    }

    [Fact]
    public void Bytes_that_are_not_json_for_the_type_throw_json_exception()
    {
        var serde = new KafkaJsonSerde<Order>();

        var act = () => serde.Deserialize("not json"u8, isNull: false, Value);

        act.Should().Throw<JsonException>();
    }
}
