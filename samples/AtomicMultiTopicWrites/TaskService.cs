using Confluent.Kafka;
using KafkaTx;

namespace AtomicMultiTopicWrites;

/// <summary>
/// The Task API's write side. Creating a task writes three topics; either all three records become visible to
/// read_committed consumers, or none does.
/// </summary>
public sealed class TaskService(ITransactionalUnitOfWork kafka, TimeProvider clock)
{
    public const string TaskEvents = "task-events";
    public const string AuditLog = "audit-log";
    public const string NotificationQueue = "notification-queue";

    /// <summary>Creates a task. <paramref name="failBeforeNotification"/> simulates a crash half-way through.</summary>
    public Task CreateTaskAsync(TaskCreated task, bool failBeforeNotification = false, CancellationToken cancellationToken = default) =>
        kafka.ExecuteAsync((scope, _) =>
        {
            scope.Produce(TaskEvents, new Message<string, TaskCreated> { Key = task.TaskId, Value = task });
            scope.Produce(AuditLog, new Message<string, AuditEntry> { Key = task.TaskId, Value = new AuditEntry("task_created", task.TaskId, clock.GetUtcNow()) });

            if (failBeforeNotification)
            {
                // Whatever goes wrong here (a bug, a validation error, the process dying) the two records above
                // are aborted with the transaction: no consumer ever sees a task without its notification.
                throw new InvalidOperationException($"notification template for task {task.TaskId} not found");
            }

            scope.Produce(NotificationQueue, new Message<string, Notification> { Key = task.AssigneeId, Value = new Notification(task.AssigneeId, "task_assigned", task.TaskId) });
            return ValueTask.CompletedTask;
        }, cancellationToken);
}
