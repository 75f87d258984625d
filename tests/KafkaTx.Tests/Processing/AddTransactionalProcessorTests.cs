using Confluent.Kafka;
using KafkaTx.Processing;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.Processing;

public class AddTransactionalProcessorTests
{
    private static IKafkaTransactionsBuilder Producer(IServiceCollection services) =>
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "fake:9092";
            o.TransactionalIdPrefix = "order-processor";
            o.InstanceId = "0";
        });

    private static IEnumerable<string> Failures(Action<TransactionalProcessorOptions> configure)
    {
        var services = new ServiceCollection();
        Producer(services).AddTransactionalProcessor<CopyHandler>(configure);
        using var provider = services.BuildServiceProvider();
        var validator = provider.GetServices<IValidateOptions<TransactionalProcessorOptions>>().OfType<TransactionalProcessorOptionsValidator>().Single();
        var options = new TransactionalProcessorOptions();
        configure(options);
        return validator.Validate(string.Empty, options).Failures ?? [];
    }

    private static void Valid(TransactionalProcessorOptions o)
    {
        o.Topics.Add("incoming-orders");
        o.GroupId = "order-processors";
    }

    [Fact]
    public void Valid_options_pass()
    {
        Failures(Valid).Should().BeEmpty();
    }

    [Fact]
    public void Missing_topics_and_group_are_named()
    {
        Failures(_ => { }).Should().HaveCount(2).And.Contain(f => f.Contains("Topics is empty")).And.Contain(f => f.Contains("GroupId is missing"));
    }

    [Fact]
    public void A_batch_window_near_the_transaction_timeout_is_refused()
    {
        Failures(o =>
        {
            Valid(o);
            o.MaxBatchDuration = TimeSpan.FromSeconds(30);
        }).Should().ContainSingle().Which.Should().Contain("MaxBatchDuration").And.Contain("transaction.timeout.ms");
    }

    [Fact]
    public void A_dead_letter_topic_that_is_also_an_input_is_refused()
    {
        Failures(o =>
        {
            Valid(o);
            o.DeadLetterTopic = "incoming-orders";
        }).Should().ContainSingle().Which.Should().Contain("dead-letter topic").And.Contain("come back forever");
    }

    [Theory]
    [InlineData("enable.auto.commit")]
    [InlineData("isolation.level")]
    [InlineData("group.id")]
    [InlineData("enable.auto.offset.store")]
    public void Consumer_settings_that_break_exactly_once_are_refused(string key)
    {
        Failures(o =>
        {
            Valid(o);
            o.ConsumerSettings[key] = "x";
        }).Should().ContainSingle().Which.Should().Contain($"'{key}'");
    }

    [Fact]
    public void A_handler_must_implement_the_handler_interface_once()
    {
        var act = () => Producer(new ServiceCollection()).AddTransactionalProcessor<string>(Valid);

        act.Should().Throw<ArgumentException>().WithMessage("*ITransactionalHandler<TKey, TValue> exactly once*");
    }

    [Fact]
    public void A_producer_runs_at_most_one_processor()
    {
        var builder = Producer(new ServiceCollection()).AddTransactionalProcessor<CopyHandler>(Valid);

        var act = () => builder.AddTransactionalProcessor<CopyHandler>(Valid);

        act.Should().Throw<InvalidOperationException>().WithMessage("*already has a processor*");
    }

    [Fact]
    public async Task Invalid_processor_options_stop_the_host_at_start_up()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(new HandlerScript());
        Producer(builder.Services).UseClientFactory(new FakeClientFactory { Broker = new FakeBroker() }).AddTransactionalProcessor<CopyHandler>(o => o.GroupId = "g");
        using var host = builder.Build();

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Contain("Topics is empty");
    }

    [Fact]
    public void A_group_instance_id_with_static_membership_turned_off_is_a_contradiction()
    {
        Failures(o =>
        {
            Valid(o);
            o.StaticMembership = false;
            o.ConsumerSettings["group.instance.id"] = "pod-0";
        }).Should().ContainSingle().Which.Should().Contain("group.instance.id").And.Contain("StaticMembership");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_fenced_processor_stops_the_application_with_exit_code_1_unless_told_not_to(bool stopApplication)
    {
        var broker = new FakeBroker();
        broker.AppendMany("incoming-orders", 0, 1);
        var factory = new FakeClientFactory { Broker = broker, Setup = p => p.BeginFailures.Enqueue(KafkaErrors.Fenced()) };
        int? exitCode = null;
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(new HandlerScript());
        builder.Services.AddSingleton(sp => new ApplicationStopper(sp.GetRequiredService<IHostApplicationLifetime>()) { SetExitCode = code => exitCode = code });
        Producer(builder.Services).UseClientFactory(factory).AddTransactionalProcessor<CopyHandler>(o =>
        {
            Valid(o);
            o.StopApplicationOnFailure = stopApplication;
        });
        using var host = builder.Build();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);

        await host.StartAsync();
        await ProcessorHarness.Until(() => factory.Consumers.Count == 1 && processor.State == ProcessorState.Running, "the processor runs");
        factory.Consumers[0].Rebalance("assign", new TopicPartition("incoming-orders", 0));
        await ProcessorHarness.Until(() => processor.State == ProcessorState.Fenced, "the processor is fenced");

        if (stopApplication)
        {
            await ProcessorHarness.Until(() => lifetime.ApplicationStopping.IsCancellationRequested, "the application is stopping");
            exitCode.Should().Be(1);
        }
        else
        {
            // The hosted service's ExecuteAsync has returned once the processor is no longer running.
            var hosted = host.Services.GetServices<IHostedService>().OfType<BackgroundService>().Single();
            await hosted.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(10));
            lifetime.ApplicationStopping.IsCancellationRequested.Should().BeFalse();
            exitCode.Should().BeNull();
        }

        await host.StopAsync();
    }

    [Fact]
    public async Task The_host_runs_the_processor_and_exposes_its_state()
    {
        var broker = new FakeBroker();
        broker.AppendMany("incoming-orders", 0, 3);
        var factory = new FakeClientFactory { Broker = broker };
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(new HandlerScript());
        Producer(builder.Services).UseClientFactory(factory).AddTransactionalProcessor<CopyHandler>(o =>
        {
            Valid(o);
            o.MaxBatchSize = 3;
        });
        using var host = builder.Build();
        var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        processor.State.Should().Be(ProcessorState.Created);

        await host.StartAsync();
        await ProcessorHarness.Until(() => factory.Consumers.Count == 1 && processor.State == ProcessorState.Running, "the processor runs");
        factory.Consumers[0].Rebalance("assign", new TopicPartition("incoming-orders", 0));
        await ProcessorHarness.Until(() => processor.CommittedRecords == 3, "three records are committed");
        await host.StopAsync();

        processor.State.Should().Be(ProcessorState.Stopped);
        processor.CommittedTransactions.Should().Be(1);
        factory.Current.Committed.Select(r => r.ValueText).Should().Equal("v0", "v1", "v2");
        factory.Consumers[0].IsClosed.Should().BeTrue();
    }
}
