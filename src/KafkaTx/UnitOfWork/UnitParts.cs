using KafkaTx.Clients;

namespace KafkaTx.UnitOfWork;

/// <summary>The parts of one unit of work, each the only owner of its state, as the unit's steps share them.</summary>
internal sealed class UnitParts
{
    public UnitParts(string transactionalId, KafkaTransactionsOptions options, TimeProvider time, UnitTelemetry telemetry, TransactionLifecycle lifecycle, OpenTransaction transaction, ProducerSession session, CallTracker calls)
    {
        TransactionalId = transactionalId;
        Options = options;
        Time = time;
        Telemetry = telemetry;
        Lifecycle = lifecycle;
        Transaction = transaction;
        Session = session;
        Calls = calls;
        Errors = new TransactionErrors(transactionalId, options, lifecycle, transaction);
    }

    public string TransactionalId { get; }

    public KafkaTransactionsOptions Options { get; }

    public TimeProvider Time { get; }

    public UnitTelemetry Telemetry { get; }

    public TransactionLifecycle Lifecycle { get; }

    public OpenTransaction Transaction { get; }

    public ProducerSession Session { get; }

    public TransactionalProducer Producer => Session.Producer;

    public CallTracker Calls { get; }

    public TransactionErrors Errors { get; }

    public TransactionState State => Lifecycle.State;
}
