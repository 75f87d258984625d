using KafkaTx.DependencyInjection;
using KafkaTx.Pooling;
using KafkaTx.Processing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Health;

/// <summary>
/// The health of one producer registration, its pool and its processor, if it has them. Unhealthy: Fenced or Faulted
/// (the unit, the processor, or any pool slot: the instance must be restarted or replaced, though the pool replaces a
/// faulted slot's producer before its next call). Degraded: a commit whose outcome is unknown (or an abort that did
/// not complete) awaiting settlement by the next call, repeated commit failures, repeated producer replacements,
/// no broker reached or no initialization for too long (<see cref="ProducerReachability"/>), records taken and
/// waiting too long for a commit, arrived records left unconsumed too long, or a processor waiting for its group
/// coordinator (<see cref="Processing.CoordinatorHold"/>). The data dictionary says which, with
/// the figures.
/// </summary>
internal sealed class KafkaTransactionsHealthCheck(string name, KafkaTransactionsHealthCheckOptions options, IServiceProvider services) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(Check());

    private HealthCheckResult Check()
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal) { ["producer"] = name.Length == 0 ? "(default)" : name };
        var unit = services.GetRequiredService<TransactionalUnitOfWorkFactory>().Created(name);
        var processor = services.GetKeyedService<ITransactionalProcessor>(name);
        var pool = services.GetKeyedService<ITransactionalUnitOfWorkPool>(name) as TransactionalUnitOfWorkPool;
        var reasons = new List<string>();
        if (pool is not null && CheckPool(pool, data, reasons) is { } poolFailure)
        {
            return poolFailure;
        }

        if (unit is null)
        {
            return reasons.Count > 0
                ? HealthCheckResult.Degraded(string.Join("; ", reasons) + ".", data: data)
                : HealthCheckResult.Healthy(pool?.CreatedSlots.Count > 0 ? "The pool's slots are usable." : "The producer has not been used yet.", data);
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

        if (unit.AwaitsSettlement)
        {
            reasons.Add($"'{unit.TransactionalId}' {Unsettled(unit)}, which its next call settles first");
        }

        AddUnitReasons(unit, reasons);
        ProducerReachability.AddReasons(unit, options.DegradedAfterBrokersUnreachableFor, reasons, data);
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

            var waitingFor = progress.WaitingForGroupCoordinatorFor;
            if (waitingFor > TimeSpan.Zero)
            {
                // At once: the hold begins only after a batch's offsets were refused for want of the coordinator (librdkafka
                // retried them until its own timeout) or not sent by three quarters of the transaction timeout.
                data["processor_waiting_for_group_coordinator_seconds"] = Math.Round(waitingFor.TotalSeconds, 1);
                reasons.Add($"the coordinator of the processor's consumer group has not answered for {waitingFor.TotalSeconds:F0} s: no new transaction begins until it does");
            }
        }

        return reasons.Count > 0
            ? HealthCheckResult.Degraded(string.Join("; ", reasons) + ".", data: data)
            : HealthCheckResult.Healthy(null, data);
    }

    /// <summary>The pool's slots: Unhealthy when a slot is fenced or faulted; otherwise the reasons it is Degraded.</summary>
    private HealthCheckResult? CheckPool(TransactionalUnitOfWorkPool pool, Dictionary<string, object> data, List<string> reasons)
    {
        var slots = pool.CreatedSlots;
        if (slots.Count == 0)
        {
            return null;
        }

        data["pool_slot_states"] = string.Join(",", slots.Select(s => s.State));
        if ((pool.FencedSlot ?? slots.FirstOrDefault(s => s.State == TransactionState.Fenced)) is { } fenced)
        {
            return HealthCheckResult.Unhealthy($"Pool slot '{fenced.TransactionalId}' is Fenced: another instance uses this instance's transactional.ids; this one must stop (the pool refuses every call).", data: data);
        }

        if (slots.FirstOrDefault(s => s.State == TransactionState.Faulted) is { } faulted)
        {
            return HealthCheckResult.Unhealthy($"Pool slot '{faulted.TransactionalId}' is Faulted: self-healing could not recover it. The pool replaces its producer before its next call; if that fails too, fix the cause (the error is logged) or restart the instance.", data: data);
        }

        foreach (var slot in slots.Where(s => s.AwaitsSettlement))
        {
            reasons.Add($"pool slot '{slot.TransactionalId}' {Unsettled(slot)}, which its next call settles first");
        }

        foreach (var slot in slots)
        {
            var slotReasons = new List<string>();
            AddUnitReasons(slot, slotReasons);
            ProducerReachability.AddReasons(slot, options.DegradedAfterBrokersUnreachableFor, slotReasons, data: null);
            reasons.AddRange(slotReasons.Select(r => $"pool slot '{slot.TransactionalId}': {r}"));
        }

        return null;
    }

    private void AddUnitReasons(TransactionalUnitOfWork unit, List<string> reasons)
    {
        if (unit.FailedCommitsInARow >= options.DegradedAfterFailedCommits)
        {
            reasons.Add($"{unit.FailedCommitsInARow} commits in a row failed");
        }

        if (unit.ReplacementsInARow >= options.DegradedAfterProducerReplacements)
        {
            reasons.Add($"the producer was replaced {unit.ReplacementsInARow} times in a row after fatal errors");
        }
    }

    private static string Unsettled(TransactionalUnitOfWork unit) =>
        unit.State == TransactionState.Committing ? "has a commit with an unknown outcome" : "has an abort that did not complete";
}
