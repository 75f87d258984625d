using KafkaTx.Clients;
using KafkaTx.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using KafkaTx.UnitOfWork;

namespace KafkaTx.DependencyInjection;

/// <summary>
/// Creates the unit of work of each named producer, and refuses to create two producers with the same
/// transactional.id in one application: they would fence each other.
/// </summary>
internal sealed class TransactionalUnitOfWorkFactory(
    IOptionsMonitor<KafkaTransactionsOptions> options,
    ClientFactories clientFactories,
    KafkaTxInstrumentation instrumentation,
    TimeProvider timeProvider,
    IEnumerable<ProcessorRegistration> processors,
    ILoggerFactory? loggerFactory = null)
{
    private readonly Dictionary<string, ProcessorRegistration> _owners = processors.ToDictionary(p => p.Name, StringComparer.Ordinal);
    private readonly Dictionary<string, string> _namesById = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TransactionalUnitOfWork> _created = new(StringComparer.Ordinal);
    private readonly HashSet<string> _announced = new(StringComparer.Ordinal); // producers whose backend was logged
    private readonly Lock _lock = new();

    /// <summary>The unit of work of a producer for the application (ITransactionalUnitOfWork), refused when a processor owns the producer.</summary>
    public TransactionalUnitOfWork Create(string name)
    {
        RefuseIfOwned(name, $"ITransactionalUnitOfWork{(name.Length == 0 ? string.Empty : $" (keyed '{name}')")}");
        return CreateUnit(name);
    }

    /// <summary>The unit of work of the producer a processor owns; refused when something else created it first.</summary>
    public TransactionalUnitOfWork CreateForProcessor(string name)
    {
        lock (_lock)
        {
            if (_created.ContainsKey(name))
            {
                throw OwnedByProcessor(name, "its unit of work, before the processor started,");
            }
        }

        return CreateUnit(name);
    }

    /// <summary>Refuses to hand out, for anything but its processor, a producer that a processor owns.</summary>
    /// <param name="name">The producer's name.</param>
    /// <param name="what">What was asked for, for the message.</param>
    public void RefuseIfOwned(string name, string what)
    {
        if (_owners.ContainsKey(name))
        {
            throw OwnedByProcessor(name, what);
        }
    }

    /// <summary>
    /// The refusal of a processor's producer to anything else: the two would share one transactional.id, so one's
    /// BeginTransaction would find the other's transaction open (or fence it), and the processor would fail.
    /// </summary>
    public static string OwnedMessage(string name, Type handlerType, string what) =>
        $"The producer '{Display(name)}' is owned by the transactional processor '{Display(name)}' (handler {handlerType.Name}), which runs its own transactions on it: " +
        $"{what} would share its transactional.id with the processor, and the two would collide (\"BeginTransaction cannot open a transaction now\") or fence each other. " +
        $"Register another producer for other writers, with AddKafkaTransactions(\"web\", ...) for ExecuteAsync, and resolve that one ([FromKeyedServices(\"web\")] ITransactionalUnitOfWork).";

    private InvalidOperationException OwnedByProcessor(string name, string what) =>
        new(OwnedMessage(name, _owners.TryGetValue(name, out var owner) ? owner.HandlerType : typeof(object), "resolving " + what));

    private TransactionalUnitOfWork CreateUnit(string name)
    {
        var settings = options.Get(name); // throws OptionsValidationException naming every problem
        Claim(settings.ResolveTransactionalId()!, name, $"The transactional producers '{{0}}' and '{Display(name)}'");
        var unit = NewUnit(name, settings);
        lock (_lock)
        {
            _created[name] = unit;
        }

        return unit;
    }

    /// <summary>The transactional.id of a pool's slot: the producer's own, suffixed with the slot number.</summary>
    public string SlotTransactionalId(string name, int slot) => $"{options.Get(name).ResolveTransactionalId()}-slot-{slot}";

    /// <summary>Creates the unit of work of one slot of a pool: the named producer's options with the slot's transactional.id.</summary>
    public TransactionalUnitOfWork CreateSlot(string name, int slot)
    {
        RefuseIfOwned(name, $"a unit of work pool (ITransactionalUnitOfWorkPool) of it");
        var id = Claim(SlotTransactionalId(name, slot), name, $"The pool of '{Display(name)}' and the producer '{{0}}'");
        return NewUnit(name, options.Get(name).WithTransactionalId(id));
    }

    /// <summary>The unit of this name, if the application has created it: a health check must not create a producer.</summary>
    public TransactionalUnitOfWork? Created(string name)
    {
        lock (_lock)
        {
            return _created.GetValueOrDefault(name);
        }
    }

    /// <summary>Records that a registration uses a transactional.id, refusing one another registration uses: the two would fence each other.</summary>
    /// <param name="id">The transactional.id.</param>
    /// <param name="name">The registration (producer name) that uses it.</param>
    /// <param name="who">How to name the two in the error, with {0} for the other registration.</param>
    /// <returns>The id.</returns>
    private string Claim(string id, string name, string who)
    {
        lock (_lock)
        {
            if (_namesById.TryGetValue(id, out var other) && other != name)
            {
                throw new InvalidOperationException(
                    string.Format(System.Globalization.CultureInfo.InvariantCulture, who, Display(other)) +
                    $" both use transactional.id '{id}'. They would fence each other: give each a distinct TransactionalIdPrefix or TransactionalId.");
            }

            _namesById[id] = name;
        }

        return id;
    }

    private TransactionalUnitOfWork NewUnit(string name, KafkaTransactionsOptions settings)
    {
        var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("KafkaTx.TransactionalUnitOfWork");
        var clientFactory = clientFactories.For(name);
        bool first;
        lock (_lock)
        {
            first = _announced.Add(name); // once per producer, however many pool slots it has
        }

        if (first)
        {
            Log.ProducerBackend(logger, Display(name), settings.TransactionalIdPrefix ?? settings.TransactionalId ?? "", ClientFactories.Describe(clientFactory, settings.BootstrapServers));
        }

        return new TransactionalUnitOfWork(name, settings, clientFactory, logger, instrumentation, timeProvider);
    }

    private static string Display(string name) => name.Length == 0 ? "(default)" : name;
}
