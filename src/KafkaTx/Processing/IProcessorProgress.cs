namespace KafkaTx.Processing;

/// <summary>What a health check reads of a processor beyond its public state.</summary>
internal interface IProcessorProgress
{
    /// <summary>How long handled records have waited for a commit; zero when everything handled is committed.</summary>
    TimeSpan UncommittedFor { get; }

    /// <summary>How long newly arrived records have waited without the processor's position moving; zero otherwise.</summary>
    TimeSpan StalledFor { get; }

    /// <summary>How long the processor has waited for its group coordinator to answer, consuming nothing; zero otherwise.</summary>
    TimeSpan WaitingForGroupCoordinatorFor { get; }
}
