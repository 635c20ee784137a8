"""The event log: the event item, its rules, retried batch writes, the log itself and bulk import."""
