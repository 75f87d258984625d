using KafkaTx.Options;
using Microsoft.Extensions.Configuration;

namespace KafkaTx.Tests.Options;

/// <summary>
/// Where unset bootstrap servers come from: KAFKATX_BOOTSTRAP_SERVERS in the application's configuration (a key
/// present decides, even empty), else the environment variable; servers set in code or the section always win.
/// </summary>
public class BootstrapServersFromConfigurationTests
{
    private static string? Resolve(string? inOptions, Dictionary<string, string?> configuration, string? environment)
    {
        var options = new KafkaTransactionsOptions { BootstrapServers = inOptions };
        var config = new ConfigurationBuilder().AddInMemoryCollection(configuration).Build();
        new SettingsFromConfiguration(config, key => key == "KAFKATX_BOOTSTRAP_SERVERS" ? environment : null).PostConfigure("", options);
        return options.BootstrapServers;
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" ")]
    public void Unset_servers_come_from_the_configuration(string? inOptions) =>
        Resolve(inOptions, new() { ["KAFKATX_BOOTSTRAP_SERVERS"] = "broker-1:9092" }, "from-env:9092").Should().Be("broker-1:9092");

    [Fact]
    public void Servers_set_in_the_options_win() =>
        Resolve("localhost:9092", new() { ["KAFKATX_BOOTSTRAP_SERVERS"] = "broker-1:9092" }, "from-env:9092").Should().Be("localhost:9092");

    [Fact]
    public void Without_the_key_in_the_configuration_the_environment_is_read() =>
        Resolve("", [], "from-env:9092").Should().Be("from-env:9092");

    [Fact]
    public void An_empty_key_in_the_configuration_means_no_servers_and_leaves_them_unset() =>
        Resolve("", new() { ["KAFKATX_BOOTSTRAP_SERVERS"] = "" }, "from-env:9092").Should().BeNull();
}
