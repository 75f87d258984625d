using KafkaTx.Options;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.Options;

/// <summary>
/// Where the instance id comes from, first match wins: InstanceId set in code or bound from the producer's section;
/// KAFKATX_INSTANCE_ID in the application's configuration; the KAFKATX_INSTANCE_ID environment variable.
/// </summary>
public class InstanceIdFromConfigurationTests
{
    private static KafkaTransactionsOptions Resolve(Dictionary<string, string?> settings, Func<IConfiguration, IServiceCollection, IKafkaTransactionsBuilder> register)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration); // as a host registers it
        register(configuration, services);
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptionsMonitor<KafkaTransactionsOptions>>().Get(Microsoft.Extensions.Options.Options.DefaultName);
    }

    private static IKafkaTransactionsBuilder InCode(IServiceCollection services, string? instanceId = null) =>
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "localhost:9092";
            o.TransactionalIdPrefix = "checkout";
            if (instanceId is not null)
            {
                o.InstanceId = instanceId;
            }
        });

    [Fact]
    public void KAFKATX_INSTANCE_ID_in_the_applications_configuration_completes_options_set_in_code()
    {
        // appsettings.json's { "KAFKATX_INSTANCE_ID": "2" }, a command-line --KAFKATX_INSTANCE_ID=2, or a host's environment variables
        var options = Resolve(new() { ["KAFKATX_INSTANCE_ID"] = "2" }, (_, services) => InCode(services));

        options.InstanceId.Should().Be("2");
        options.ResolveTransactionalId().Should().Be("checkout-2");
    }

    [Fact]
    public void InstanceId_binds_from_the_producers_configuration_section()
    {
        var options = Resolve(
            new()
            {
                ["KafkaTx:BootstrapServers"] = "localhost:9092",
                ["KafkaTx:TransactionalIdPrefix"] = "checkout",
                ["KafkaTx:InstanceId"] = "7",
            },
            (configuration, services) => services.AddKafkaTransactions(configuration.GetSection("KafkaTx")));

        options.ResolveTransactionalId().Should().Be("checkout-7");
    }

    [Fact]
    public void InstanceId_from_the_section_wins_over_KAFKATX_INSTANCE_ID()
    {
        var options = Resolve(
            new()
            {
                ["KafkaTx:BootstrapServers"] = "localhost:9092",
                ["KafkaTx:TransactionalIdPrefix"] = "checkout",
                ["KafkaTx:InstanceId"] = "7",
                ["KAFKATX_INSTANCE_ID"] = "2",
            },
            (configuration, services) => services.AddKafkaTransactions(configuration.GetSection("KafkaTx")));

        options.InstanceId.Should().Be("7");
    }

    [Fact]
    public void InstanceId_set_in_code_wins_over_KAFKATX_INSTANCE_ID()
    {
        var options = Resolve(new() { ["KAFKATX_INSTANCE_ID"] = "2" }, (_, services) => InCode(services, instanceId: "0"));

        options.InstanceId.Should().Be("0");
    }

    [Fact]
    public void An_empty_InstanceId_counts_as_unset()
    {
        var options = Resolve(
            new()
            {
                ["KafkaTx:BootstrapServers"] = "localhost:9092",
                ["KafkaTx:TransactionalIdPrefix"] = "checkout",
                ["KafkaTx:InstanceId"] = "",
                ["KAFKATX_INSTANCE_ID"] = "2",
            },
            (configuration, services) => services.AddKafkaTransactions(configuration.GetSection("KafkaTx")));

        options.InstanceId.Should().Be("2");
    }

    [Fact]
    public void Configuration_wins_over_the_environment_variable_and_the_environment_variable_is_the_last_resort()
    {
        string? Environment(string name) => name == "KAFKATX_INSTANCE_ID" ? "from-environment" : null;
        var configured = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["KAFKATX_INSTANCE_ID"] = "from-configuration" }).Build();
        var empty = new ConfigurationBuilder().Build();

        Fill(new SettingsFromConfiguration(configured, Environment)).Should().Be("from-configuration");
        Fill(new SettingsFromConfiguration(empty, Environment)).Should().Be("from-environment");
        Fill(new SettingsFromConfiguration(configuration: null, Environment)).Should().Be("from-environment", "an application without a host registers no configuration");
        Fill(new SettingsFromConfiguration(empty, _ => null)).Should().BeNull();

        static string? Fill(SettingsFromConfiguration source)
        {
            var options = new KafkaTransactionsOptions { TransactionalIdPrefix = "checkout" };
            source.PostConfigure(Microsoft.Extensions.Options.Options.DefaultName, options);
            return options.InstanceId;
        }
    }

    [Fact]
    public void A_complete_TransactionalId_takes_no_instance_id()
    {
        var options = new KafkaTransactionsOptions { TransactionalId = "checkout-0" };
        new SettingsFromConfiguration(configuration: null, _ => "2").PostConfigure(null, options);

        options.InstanceId.Should().BeNull();
    }

    [Fact]
    public void Named_producers_read_the_same_KAFKATX_INSTANCE_ID()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["KAFKATX_INSTANCE_ID"] = "3" }).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddKafkaTransactions("payments", o => { o.BootstrapServers = "localhost:9092"; o.TransactionalIdPrefix = "payments"; });
        services.AddKafkaTransactions("orders", o => { o.BootstrapServers = "localhost:9092"; o.TransactionalIdPrefix = "orders"; });
        using var provider = services.BuildServiceProvider();
        var monitor = provider.GetRequiredService<IOptionsMonitor<KafkaTransactionsOptions>>();

        monitor.Get("payments").ResolveTransactionalId().Should().Be("payments-3");
        monitor.Get("orders").ResolveTransactionalId().Should().Be("orders-3");
    }
}
