using Confluent.SchemaRegistry;
using KafkaTx.Testing.SchemaRegistry;

namespace KafkaTx.Tests.SchemaRegistry;

/// <summary>What the fake registry keeps that an application's own tests may read back.</summary>
public class FakeSchemaRegistryClientTests
{
    [Fact]
    public async Task A_compatibility_level_set_for_a_subject_or_globally_is_read_back_and_Backward_is_the_default()
    {
        using var registry = new FakeSchemaRegistryClient();

        (await registry.GetCompatibilityAsync("orders-value")).Should().Be(Compatibility.Backward, "the registry's default");
        await registry.UpdateCompatibilityAsync(Compatibility.Full);
        await registry.UpdateCompatibilityAsync(Compatibility.None, "orders-value");

        (await registry.GetCompatibilityAsync("orders-value")).Should().Be(Compatibility.None);
        (await registry.GetCompatibilityAsync("invoices-value")).Should().Be(Compatibility.Full, "a subject without its own level has the global one");
        (await registry.GetCompatibilityAsync()).Should().Be(Compatibility.Full);
    }
}
