using Confluent.Kafka;

namespace KafkaTx.Processing;

/// <summary>
/// Start-up rules tying <see cref="TransactionalProcessorOptions.GroupProtocol"/> to the other group settings. With the
/// consumer protocol (KIP-848) the broker assigns partitions and owns the session timeout and the heartbeat interval;
/// librdkafka refuses to create a consumer that sets any of them, so they are refused here first, with what to do.
/// </summary>
internal static class GroupProtocolRules
{
    /// <summary>Settings the consumer protocol moves to the broker, with the broker setting that replaces each.</summary>
    private static readonly Dictionary<string, string> BrokerSide = new(StringComparer.Ordinal)
    {
        ["session.timeout.ms"] = "the broker sets the session timeout (group.consumer.session.timeout.ms, 45 s by default)",
        ["heartbeat.interval.ms"] = "the broker sets the heartbeat interval (group.consumer.heartbeat.interval.ms, 5 s by default)",
        ["group.protocol.type"] = "it belongs to the classic protocol",
    };

    public static void Validate(string label, TransactionalProcessorOptions options, List<string> failures)
    {
        var settings = options.ConsumerSettings ?? new Dictionary<string, string>();
        var protocol = options.GroupProtocol;
        if (!Enum.IsDefined(protocol))
        {
            failures.Add($"{label}: GroupProtocol is {(int)protocol}, not a GroupProtocol; use Classic or Consumer.");
            return;
        }

        var name = protocol == GroupProtocol.Consumer ? "consumer" : "classic";
        if (settings.TryGetValue("group.protocol", out var raw) && !string.Equals(raw?.Trim(), name, StringComparison.OrdinalIgnoreCase))
        {
            failures.Add(raw?.Trim().ToUpperInvariant() is "CLASSIC" or "CONSUMER"
                ? $"{label}: ConsumerSettings sets 'group.protocol' to '{raw}' but GroupProtocol is {protocol}. Set TransactionalProcessorOptions.GroupProtocol instead and remove the setting."
                : $"{label}: ConsumerSettings sets 'group.protocol' to '{raw}', which is neither 'classic' nor 'consumer'. Set TransactionalProcessorOptions.GroupProtocol instead and remove the setting.");
        }

        if (protocol == GroupProtocol.Classic)
        {
            if (settings.ContainsKey("group.remote.assignor"))
            {
                failures.Add($"{label}: ConsumerSettings sets 'group.remote.assignor', the broker-side assignor of the consumer protocol (KIP-848), but GroupProtocol is Classic, whose assignor is AssignmentStrategy. Remove it, or set GroupProtocol = Consumer.");
            }

            return;
        }

        if (options.AssignmentStrategyIsSet)
        {
            failures.Add($"{label}: AssignmentStrategy is set ({options.AssignmentStrategy}) but GroupProtocol is Consumer, where the broker assigns the partitions (librdkafka refuses a client-side assignor with it). Remove AssignmentStrategy; to choose the broker's assignor, set ConsumerSettings[\"group.remote.assignor\"] (\"uniform\" or \"range\").");
        }

        foreach (var (key, why) in BrokerSide)
        {
            if (settings.ContainsKey(key))
            {
                failures.Add($"{label}: ConsumerSettings sets '{key}' but GroupProtocol is Consumer: {why}, and librdkafka refuses the consumer if it is set. Remove it.");
            }
        }
    }
}
