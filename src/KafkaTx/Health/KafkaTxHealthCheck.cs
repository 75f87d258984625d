using KafkaTx.DependencyInjection;
using KafkaTx.Pooling;
using KafkaTx.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KafkaTx.Health;

/// <summary>
/// The health of one producer registration and its processor, if it has one. Unhealthy: Fenced or Faulted (the
/// instance must be restarted or replaced). Degraded: repeated commit failures, repeated producer replacements,
/// records taken and waiting too long for a commit, or arrived records left unconsumed too long. The data dictionary
/// says which, with the figures.
/// </summary>
internal sealed class KafkaTxHealthCheck(string name, KafkaTxHealthCheckOptions options, IServiceProvider services) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(Check());

    private HealthCheckResult Check()
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal) { ["producer"] = name.Length == 0 ? "(default)" : name };
        var unit = services.GetRequiredService<TransactionalUnitOfWorkFactory>().Created(name);
        var processor = services.GetKeyedService<ITransactionalProcessor>(name);
        var slots = (services.GetKeyedService<ITransactionalUnitOfWorkPool>(name) as TransactionalUnitOfWorkPool)?.CreatedSlots ?? [];
        if (slots.Count > 0)
        {
            data["pool_slot_states"] = string.Join(",", slots.Select(s => s.State));
            if (slots.FirstOrDefault(s => s.State is TransactionState.Fenced or TransactionState.Faulted) is { } broken)
            {
                return HealthCheckResult.Unhealthy($"Pool slot '{broken.TransactionalId}' is {broken.State}: {(broken.State == TransactionState.Fenced ? "another instance uses this instance's transactional.ids; this one must stop." : "self-healing could not recover it; restart the instance.")}", data: data);
            }
        }

        if (unit is null)
        {
            return HealthCheckResult.Healthy(slots.Count > 0 ? "The pool's slots are usable." : "The producer has not been used yet.", data);
        }

        data["transactional_id"] = unit.TransactionalId;
        data["state"] = unit.State.ToString();
        data["failed_commits_in_a_row"] = unit.FailedCommitsInARow;
        data["producer_replacements_in_a_row"] = unit.ReplacementsInARow;
        if (processor is not null)
        {
            data["processor_state"] = processor.State.ToString();
            data["processor_committed_records"] = processor.CommittedRecords;
        }

        if (unit.State is TransactionState.Fenced || processor?.State is ProcessorState.Fenced)
        {
            return HealthCheckResult.Unhealthy($"'{unit.TransactionalId}' was fenced by a newer instance with the same transactional.id: this instance is a zombie and must stop.", processor?.Failure, data);
        }

        if (unit.State is TransactionState.Faulted || processor?.State is ProcessorState.Faulted)
        {
            return HealthCheckResult.Unhealthy($"'{unit.TransactionalId}' is faulted: self-healing could not recover it. Restart the instance (or ResetAsync after fixing the cause).", processor?.Failure, data);
        }

        var reasons = new List<string>();
        if (unit.FailedCommitsInARow >= options.DegradedAfterFailedCommits)
        {
            reasons.Add($"{unit.FailedCommitsInARow} commits in a row failed");
        }

        if (unit.ReplacementsInARow >= options.DegradedAfterProducerReplacements)
        {
            reasons.Add($"the producer was replaced {unit.ReplacementsInARow} times in a row after fatal errors");
        }

        if (processor is IProcessorProgress progress)
        {
            var uncommittedFor = progress.UncommittedFor;
            if (uncommittedFor >= options.DegradedAfterUncommittedFor)
            {
                data["processor_uncommitted_for_seconds"] = Math.Round(uncommittedFor.TotalSeconds, 1);
                reasons.Add($"handled records have waited {uncommittedFor.TotalSeconds:F0} s for a commit");
            }

            var stalledFor = progress.StalledFor;
            if (stalledFor >= options.DegradedAfterUncommittedFor)
            {
                data["processor_stalled_for_seconds"] = Math.Round(stalledFor.TotalSeconds, 1);
                reasons.Add($"records that arrived {stalledFor.TotalSeconds:F0} s ago have not been consumed");
            }
        }

        return reasons.Count > 0
            ? HealthCheckResult.Degraded(string.Join("; ", reasons) + ".", data: data)
            : HealthCheckResult.Healthy(null, data);
    }
}
