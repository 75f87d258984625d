namespace AtomicMultiTopicWrites;

/// <summary>Written to task-events when a task is created.</summary>
public sealed record TaskCreated(string TaskId, string Title, string AssigneeId);

/// <summary>Written to audit-log: compliance needs one entry for every task that exists.</summary>
public sealed record AuditEntry(string Action, string TaskId, DateTimeOffset At);

/// <summary>Written to notification-queue: the email service tells the assignee.</summary>
public sealed record Notification(string UserId, string Template, string TaskId);
