using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaTx.Tests.Processing.Batching;

/// <summary>A batch handler is registered as a record handler is, with the same options, checked at start-up.</summary>
public class AddBatchHandlerTests
{
    private static IKafkaTransactionsBuilder Producer(IServiceCollection services, FakeBroker broker) =>
        services.AddKafkaTransactions(o =>
        {
            o.BootstrapServers = "fake:9092";
            o.TransactionalIdPrefix = "order-processor";
            o.InstanceId = "0";
        }).UseClientFactory(new FakeClientFactory { Broker = broker });

    private static IHost Host(FakeBroker broker, BatchScript script, Action<TransactionalProcessorOptions> configure)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(script);
        Producer(builder.Services, broker).AddTransactionalProcessor<BatchCopyHandler>(o =>
        {
            o.Topics.Add("in");
            o.GroupId = "batchers";
            configure(o);
        });
        return builder.Build();
    }

    [Fact]
    public async Task The_host_runs_a_batch_handler_registered_with_AddTransactionalProcessor()
    {
        var broker = new FakeBroker();
        broker.AppendMany("in", 0, 3);
        var script = new BatchScript();
        using var host = Host(broker, script, o => o.MaxBatchSize = 3);
        var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>(string.Empty);
        var factory = (FakeClientFactory)host.Services.GetRequiredService<IKafkaClientFactory>();

        await host.StartAsync();
        await ProcessorHarness.Until(() => factory.Consumers.Count == 1 && processor.State == ProcessorState.Running, "the processor runs");
        factory.Consumers[0].Rebalance("assign", new TopicPartition("in", 0));
        await ProcessorHarness.Until(() => processor.CommittedRecords == 3, "the batch commits");
        await host.StopAsync();

        script.Calls.Should().ContainSingle().Which.Should().Equal("v0", "v1", "v2");
        processor.CommittedTransactions.Should().Be(1);
    }

    [Fact]
    public async Task A_batch_handler_with_MaxConcurrency_above_1_is_refused_at_start_up_saying_why()
    {
        using var host = Host(new FakeBroker(), new BatchScript(), o => o.MaxConcurrency = 8);

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should()
            .Contain("BatchCopyHandler is a batch handler").And.Contain("MaxConcurrency must be 1").And.Contain("implement ITransactionalHandler instead");
    }

    [Fact]
    public void A_handler_implementing_both_handler_interfaces_is_refused()
    {
        var act = () => Producer(new ServiceCollection(), new FakeBroker()).AddTransactionalProcessor<BothHandlers>(o => o.Topics.Add("in"));

        act.Should().Throw<ArgumentException>().WithMessage("*one of ITransactionalBatchHandler<TKey, TValue> or ITransactionalHandler<TKey, TValue> exactly once (it implements them 2 times)*");
    }

    private sealed class BothHandlers : ITransactionalHandler<string, string>, ITransactionalBatchHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask HandleAsync(IReadOnlyList<ConsumeResult<string, string>> records, ITransactionScope transaction, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
