namespace KafkaTx.DependencyInjection;

/// <summary>
/// A processor registered on a producer's builder: it owns that producer (its transactional.id), which nothing else
/// may then resolve.
/// </summary>
/// <param name="Name">The producer's (and the processor's) name.</param>
/// <param name="HandlerType">The handler, for messages.</param>
internal sealed record ProcessorRegistration(string Name, Type HandlerType);

/// <summary>A pool registered with AddUnitOfWorkPool, for the start-up check that no processor owns its producer.</summary>
/// <param name="Name">The producer's name.</param>
internal sealed record UnitOfWorkPoolRegistration(string Name);
