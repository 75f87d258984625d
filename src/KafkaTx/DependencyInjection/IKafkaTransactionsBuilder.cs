using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx;

/// <summary>
/// Returned by <c>AddKafkaTransactions</c>: configures one named transactional producer further (serializers,
/// client factory), and is where later features such as processors attach.
/// </summary>
public interface IKafkaTransactionsBuilder
{
    /// <summary>The name of the producer being configured; <see cref="string.Empty"/> for the default one.</summary>
    string Name { get; }

    /// <summary>The service collection the producer is registered in.</summary>
    IServiceCollection Services { get; }
}
