namespace KafkaTx;

/// <summary>What a processor does with a record that failed <see cref="TransactionRetryOptions.MaxAttempts"/> times.</summary>
public enum PoisonRecordPolicy
{
    /// <summary>
    /// Write the record, unchanged, to the dead-letter topic in the same transaction as its offset, with headers that
    /// say where it came from and why it failed (see <see cref="DeadLetterHeaders"/>). The default.
    /// </summary>
    DeadLetter = 0,

    /// <summary>Stop the processor (state Faulted) without committing past the record, for a person to decide.</summary>
    Stop,

    /// <summary>Commit past the record without output, and log it at Error level.</summary>
    Skip,
}
