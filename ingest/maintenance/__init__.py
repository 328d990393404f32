"""The maintenance engine: tasks from the calendar, the machines' meters, conditions and
downtime, raised exactly once and delivered over MQTT and webhooks (docs/maintenance.md).

The schedule spec, its calendar and the task lifecycle live in core/maintenance (the API
uses them too). Here: `triggers` (what a schedule owes now, no I/O), `meters` (runtime hours
and counter increases from landed rows), `raising` (decide and insert under a lock, exactly
once), `conditions`, `corrective`, `completion` (the meter a completed task records),
`notify` (MQTT), `webhooks`, `engine` (one evaluation), `runner` (inside the ingest or
standalone), `cli`.
"""
