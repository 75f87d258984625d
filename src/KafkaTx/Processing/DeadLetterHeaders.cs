namespace KafkaTx;

/// <summary>The headers a processor adds to a record it writes to the dead-letter topic (values are UTF-8 text).</summary>
public static class DeadLetterHeaders
{
    /// <summary>The topic the record was consumed from.</summary>
    public const string Topic = "kafkatx.dlt.topic";

    /// <summary>Its partition.</summary>
    public const string Partition = "kafkatx.dlt.partition";

    /// <summary>Its offset.</summary>
    public const string Offset = "kafkatx.dlt.offset";

    /// <summary>The full name of the type of the last exception.</summary>
    public const string ErrorType = "kafkatx.dlt.error.type";

    /// <summary>The message of the last exception.</summary>
    public const string ErrorMessage = "kafkatx.dlt.error.message";

    /// <summary>How many times the record was handled and failed.</summary>
    public const string Attempts = "kafkatx.dlt.attempts";
}
