namespace KafkaTx.Processing.Concurrent;

/// <summary>
/// The most records a concurrent batch dispatches after batches overran their transaction's bound with no call at
/// fault: halved at each such overrun, doubled back at each batch that ends without one, so that one call alone, when
/// it overruns, runs long enough to be charged. Processor thread only.
/// </summary>
internal sealed class BatchCap
{
    private bool _overranUncharged; // the open batch overran with no call at fault: it ends with the cap kept low

    /// <summary>The cap (no cap: int.MaxValue).</summary>
    public int Value { get; private set; } = int.MaxValue;

    /// <summary>The open batch overran with no call at fault, having dispatched <paramref name="dispatched"/> records.</summary>
    public void OverranUncharged(int dispatched)
    {
        Value = Math.Max(1, dispatched / 2);
        _overranUncharged = true;
    }

    /// <summary>The open batch ended (once per batch): the cap doubles back, unless the batch overran.</summary>
    public void BatchEnded()
    {
        if (!_overranUncharged)
        {
            Value = Value >= int.MaxValue / 2 ? int.MaxValue : Value * 2;
        }

        _overranUncharged = false;
    }
}
