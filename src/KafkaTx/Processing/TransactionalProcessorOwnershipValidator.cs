using KafkaTx.DependencyInjection;
using KafkaTx.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaTx.Processing;

/// <summary>
/// Start-up validation that a processor's producer is used by nothing registered beside it: a pool of it, or
/// InitializeOnStart for it, would resolve it for other callers. Resolving its ITransactionalUnitOfWork is refused
/// when it happens (nothing registers that ahead).
/// </summary>
internal sealed class TransactionalProcessorOwnershipValidator(
    IEnumerable<ProcessorRegistration> processors,
    IEnumerable<UnitOfWorkPoolRegistration> pools,
    IEnumerable<InitializeOnStartRegistration> initializeOnStart) : IValidateOptions<TransactionalProcessorOptions>
{
    public ValidateOptionsResult Validate(string? name, TransactionalProcessorOptions options)
    {
        name ??= string.Empty;
        var processor = processors.FirstOrDefault(p => p.Name == name);
        if (processor is null)
        {
            return ValidateOptionsResult.Skip;
        }

        var failures = new List<string>();
        if (pools.Any(p => p.Name == name))
        {
            failures.Add(TransactionalUnitOfWorkFactory.OwnedMessage(name, processor.HandlerType, "AddUnitOfWorkPool on its builder"));
        }

        if (initializeOnStart.Any(p => p.Name == name))
        {
            failures.Add(TransactionalUnitOfWorkFactory.OwnedMessage(name, processor.HandlerType, "InitializeOnStart on its builder (a processor initializes its producer itself)"));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
