using Confluent.Kafka;
using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaTx.Tests.Processing;

/// <summary>ITransactionalProcessor.TransactionalId: null before the processor starts, its producer's id once it has.</summary>
public class ProcessorTransactionalIdTests
{
    [Fact]
    public async Task The_transactional_id_is_null_before_start_and_resolved_from_the_options_at_start()
    {
        var kafka = new InMemoryKafkaCluster();
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddKafkaTransactions("shipping", o =>
        {
            o.TransactionalIdPrefix = "shipping";
            o.InstanceId = "pod-7";
        }).UseInMemoryKafka(kafka).AddTransactionalProcessor<Copy>(p =>
        {
            p.Topics.Add("in");
            p.GroupId = "copiers";
        });
        using var host = builder.Build();
        var processor = host.Services.GetRequiredKeyedService<ITransactionalProcessor>("shipping");

        processor.TransactionalId.Should().BeNull("nothing is resolved before the processor starts");
        await host.StartAsync();
        processor.TransactionalId.Should().Be("shipping-pod-7");
        await host.StopAsync();
        processor.TransactionalId.Should().Be("shipping-pod-7", "it stays readable after the stop, for diagnostics");
    }

    private sealed class Copy : ITransactionalHandler<string, string>
    {
        public ValueTask HandleAsync(ConsumeResult<string, string> record, ITransactionScope transaction, CancellationToken cancellationToken)
        {
            transaction.Produce("out", record.Message);
            return ValueTask.CompletedTask;
        }
    }
}
