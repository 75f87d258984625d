using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.DependencyInjection;

internal sealed class KafkaTransactionsBuilder(string name, IServiceCollection services) : IKafkaTransactionsBuilder
{
    public string Name { get; } = name;

    public IServiceCollection Services { get; } = services;
}
