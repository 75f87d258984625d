namespace KafkaTx;

/// <summary>The life of a transactional processor.</summary>
public enum ProcessorState
{
    /// <summary>Registered; the host has not started it.</summary>
    Created = 0,

    /// <summary>Initializing its producer and joining the consumer group.</summary>
    Starting,

    /// <summary>Consuming, transforming and committing.</summary>
    Running,

    /// <summary>Stopped by the host, after finishing or aborting its open transaction.</summary>
    Stopped,

    /// <summary>Stopped for good: another instance with the same transactional.id took over. Nothing more is written.</summary>
    Fenced,

    /// <summary>Stopped: the producer's self-healing gave up (<see cref="KafkaTransactionsOptions.MaxProducerReplacements"/>), or a poison record met the Stop policy.</summary>
    Faulted,
}
