using Confluent.Kafka;
using KafkaTx.Processing;
using KafkaTx.Testing.Shared;
using KafkaTx.Tests.Fakes;
using KafkaTx.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.Health;

/// <summary>The health check follows the unit's and the processor's states, through the application's HealthCheckService.</summary>
public class KafkaTransactionsHealthCheckTests
{
    private static (ServiceProvider Provider, FakeClientFactory Factory) Build(Action<KafkaTransactionsOptions>? configure = null, Action<KafkaTransactionsHealthCheckOptions>? health = null)
    {
        var factory = new FakeClientFactory();
        var services = new ServiceCollection().AddLogging(); // as every application has
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "fake:9092";
            o.TransactionalIdPrefix = "task-api";
            o.InstanceId = "0";
            o.Retry.MaxAttempts = 1;
            configure?.Invoke(o);
        }).UseClientFactory(factory).AddHealthChecks(health);
        return (services.BuildServiceProvider(), factory);
    }

    /// <summary>An application with a processor over fakes and the KafkaTx health check; its failures do not stop the test host.</summary>
    private static IHost ProcessorHost(FakeClientFactory factory, HandlerScript script, TimeProvider? clock = null, Action<KafkaTransactionsHealthCheckOptions>? health = null, Action<TransactionalProcessorOptions>? processor = null)
    {
        var builder = Host.CreateApplicationBuilder();
        if (clock is not null)
        {
            builder.Services.AddSingleton(clock);
        }

        builder.Services.AddSingleton(script);
        builder.Services.AddSingleton(sp => new ApplicationStopper(sp.GetRequiredService<IHostApplicationLifetime>()) { SetExitCode = _ => { } });
        builder.Services.AddKafkaTransactions(o =>
            {
                o.BootstrapServers = "fake:9092";
                o.TransactionalIdPrefix = "order-processor";
                o.InstanceId = "0";
            })
            .UseClientFactory(factory)
            .AddTransactionalProcessor<CopyHandler>(o =>
            {
                o.Topics.Add("incoming-orders");
                o.GroupId = "order-processors";
                processor?.Invoke(o);
            })
            .AddHealthChecks(health);
        return builder.Build();
    }

    private static async Task<HealthReportEntry> CheckAsync(IServiceProvider provider) =>
        (await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["kafkatx"];

    private static ValueTask Write(ITransactionScope scope, CancellationToken _)
    {
        scope.Produce("t", new Message<string, string> { Key = "k", Value = "v" });
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_producer_not_used_yet_is_healthy_and_the_check_creates_none()
    {
        var (provider, factory) = Build();
        await using var _ = provider;

        var entry = await CheckAsync(provider);

        entry.Status.Should().Be(HealthStatus.Healthy);
        entry.Description.Should().Contain("not been used");
        factory.Producers.Should().BeEmpty("a health check must not create a producer");
        entry.Tags.Should().Contain("kafkatx");
    }

    [Fact]
    public async Task A_unit_that_commits_is_healthy_and_the_data_names_it()
    {
        var (provider, _) = Build();
        await using var __ = provider;
        await provider.GetRequiredService<ITransactionalUnitOfWork>().ExecuteAsync(Write);

        var entry = await CheckAsync(provider);

        entry.Status.Should().Be(HealthStatus.Healthy);
        entry.Data["transactional_id"].Should().Be("task-api-0");
        entry.Data["state"].Should().Be("Ready");
    }

    [Fact]
    public async Task A_fenced_unit_is_unhealthy()
    {
        var (provider, factory) = Build();
        await using var _ = provider;
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        factory.Current.CommitFailures.Enqueue(KafkaErrors.Fenced());
        await unit.Awaiting(u => u.ExecuteAsync(Write)).Should().ThrowAsync<KafkaTransactionException>();

        var entry = await CheckAsync(provider);

        entry.Status.Should().Be(HealthStatus.Unhealthy);
        entry.Description.Should().Contain("fenced").And.Contain("zombie");
        entry.Data["state"].Should().Be("Fenced");
    }

    [Fact]
    public async Task A_faulted_unit_is_unhealthy()
    {
        var (provider, factory) = Build(o => o.MaxProducerReplacements = 0);
        await using var _ = provider;
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        factory.Current.CommitFailures.Enqueue(KafkaErrors.Fatal());
        await unit.Awaiting(u => u.ExecuteAsync(Write)).Should().ThrowAsync<KafkaTransactionException>();

        var entry = await CheckAsync(provider);

        entry.Status.Should().Be(HealthStatus.Unhealthy);
        entry.Description.Should().Contain("faulted");
    }

    [Fact]
    public async Task Repeated_commit_failures_are_degraded_and_a_commit_makes_it_healthy_again()
    {
        var (provider, factory) = Build(health: h => h.DegradedAfterFailedCommits = 2);
        await using var _ = provider;
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        for (var i = 0; i < 2; i++)
        {
            factory.Current.CommitFailures.Enqueue(KafkaErrors.Abortable());
            await unit.Awaiting(u => u.ExecuteAsync(Write)).Should().ThrowAsync<KafkaTransactionException>();
        }

        var degraded = await CheckAsync(provider);
        degraded.Status.Should().Be(HealthStatus.Degraded);
        degraded.Description.Should().Contain("2 commits in a row failed");
        degraded.Data["failed_commits_in_a_row"].Should().Be(2);

        await unit.ExecuteAsync(Write);
        (await CheckAsync(provider)).Status.Should().Be(HealthStatus.Healthy);
    }

    [Fact]
    public async Task Repeated_producer_replacements_are_degraded()
    {
        var (provider, factory) = Build(o => o.Retry.BaseDelay = TimeSpan.Zero, h => h.DegradedAfterProducerReplacements = 2);
        await using var _ = provider;
        var unit = provider.GetRequiredService<ITransactionalUnitOfWork>();
        await unit.InitializeAsync();
        for (var i = 0; i < 2; i++)
        {
            factory.Current.AbortFailures.Enqueue(KafkaErrors.Fatal());
            await unit.Awaiting(u => u.ExecuteAsync((scope, ct) =>
            {
                scope.Produce("t", new Message<string, string> { Key = "k", Value = "v" });
                throw new InvalidOperationException("work failed");
            })).Should().ThrowAsync<InvalidOperationException>();
        }

        var entry = await CheckAsync(provider);

        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Contain("replaced 2 times in a row");
    }

    [Fact]
    public async Task A_fenced_processor_is_unhealthy_and_a_running_one_healthy()
    {
        var broker = new FakeBroker();
        broker.AppendMany("incoming-orders", 0, 1);
        var factory = new FakeClientFactory { Broker = broker, Setup = p => p.BeginFailures.Enqueue(KafkaErrors.Fenced()) };
        using var host = ProcessorHost(factory, new HandlerScript());
        var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);

        await host.StartAsync();
        await ProcessorHarness.Until(() => factory.Consumers.Count == 1 && processor.State == ProcessorState.Running, "the processor runs");
        var running = await CheckAsync(host.Services);
        running.Status.Should().Be(HealthStatus.Healthy);
        running.Data["processor_state"].Should().Be("Running");

        factory.Consumers[0].Rebalance("assign", new TopicPartition("incoming-orders", 0)); // its first transaction is fenced
        await ProcessorHarness.Until(() => processor.State == ProcessorState.Fenced, "the processor is fenced");

        var fenced = await CheckAsync(host.Services);
        fenced.Status.Should().Be(HealthStatus.Unhealthy);
        fenced.Data["processor_state"].Should().Be("Fenced");
        await host.StopAsync();
    }

    [Fact]
    public async Task A_processor_whose_handler_hangs_is_degraded_once_its_record_has_waited_longer_than_the_threshold()
    {
        var clock = new ManualClock();
        using var release = new ManualResetEventSlim();
        var broker = new FakeBroker();
        broker.AppendMany("incoming-orders", 0, 1);
        var factory = new FakeClientFactory { Broker = broker };
        var script = new HandlerScript { OnHandle = _ => release.Wait() };
        using var host = ProcessorHost(factory, script, clock, h => h.DegradedAfterUncommittedFor = TimeSpan.FromSeconds(30));

        await host.StartAsync();
        await ProcessorHarness.Until(() => factory.Consumers.Count == 1, "the processor runs");
        factory.Consumers[0].Rebalance("assign", new TopicPartition("incoming-orders", 0));
        await ProcessorHarness.Until(() => script.Seen.Count == 1, "the handler holds the record");
        var holding = await CheckAsync(host.Services);
        clock.Advance(TimeSpan.FromSeconds(31));
        var hung = await CheckAsync(host.Services);
        release.Set();
        await host.StopAsync();

        holding.Status.Should().Be(HealthStatus.Healthy, "the record has only just been taken");
        hung.Status.Should().Be(HealthStatus.Degraded);
        hung.Data["processor_uncommitted_for_seconds"].Should().Be(31.0);
        hung.Description.Should().Contain("waited 31 s for a commit");
    }

    [Fact]
    public async Task A_concurrent_processor_with_one_call_hung_is_degraded_though_its_other_calls_completed()
    {
        var clock = new ManualClock();
        var hang = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var broker = new FakeBroker();
        broker.AppendMany("incoming-orders", 0, 3);
        var factory = new FakeClientFactory { Broker = broker };
        var done = 0;
        var script = new HandlerScript
        {
            // The first record's call awaits what never comes (until the test ends it); the others complete.
            Await = async (value, token) =>
            {
                if (Interlocked.Increment(ref done) == 1)
                {
                    await hang.Task.WaitAsync(token);
                }
            },
        };
        using var host = ProcessorHost(factory, script, clock, h => h.DegradedAfterUncommittedFor = TimeSpan.FromSeconds(30), o => o.MaxConcurrency = 4);

        await host.StartAsync();
        await ProcessorHarness.Until(() => factory.Consumers.Count == 1, "the processor runs");
        factory.Consumers[0].Rebalance("assign", new TopicPartition("incoming-orders", 0));
        await ProcessorHarness.Until(() => script.Seen.Count == 3, "every record's call started, one of them hung");
        var holding = await CheckAsync(host.Services);
        clock.Advance(TimeSpan.FromSeconds(31));
        var hung = await CheckAsync(host.Services);
        hang.SetResult();
        await host.StopAsync();

        holding.Status.Should().Be(HealthStatus.Healthy, "the records have only just been taken");
        hung.Status.Should().Be(HealthStatus.Degraded, "a call hung past the threshold holds its whole batch's commit");
        hung.Description.Should().Contain("waited 31 s for a commit");
    }
}
