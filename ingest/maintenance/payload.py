"""The JSON documents the engine publishes (docs/maintenance.md, "Message schema" and
"Summary"): a task event, the same on MQTT and in webhook bodies, built by the database from
the history row and the task as it is now; and a plant's summary of its open tasks. Both
under the caller's tenant context."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from core.maintenance.lifecycle import OPEN

SCHEMA_VERSION = 1

_EVENTS = """
SELECT h.id, o.code, p.code, jsonb_build_object(
    'v', %(v)s::int,
    'event_id', h.id,
    'event', h.event,
    'at', h.at,
    'organization', o.code,
    'plant', p.code,
    'task', jsonb_build_object(
        'id', t.id, 'kind', t.task_kind, 'title', t.title, 'status', t.status,
        'machine', m.code, 'machine_id', t.machine_id, 'schedule_id', t.schedule_id,
        'condition_rule_id', t.condition_rule_id, 'downtime_event_id', t.downtime_event_id,
        'occurrence', t.occurrence, 'raised_by', t.raised_by, 'raised_at', t.created_at,
        'due_at', t.due_at, 'due_meter', t.due_meter, 'meter_at_raise', t.meter_at_raise,
        'overdue_at', t.overdue_at, 'overdue_meter', t.overdue_meter,
        'missed_occurrences', t.missed_occurrences, 'priority', t.priority,
        'estimated_minutes', t.estimated_minutes, 'checklist', t.checklist,
        'evidence', t.evidence, 'assignee', a.email, 'skip_reason', t.skip_reason,
        'completed_at', t.completed_at, 'meter_at_completion', t.meter_at_completion))
FROM mes.pm_task_history h
JOIN mes.pm_tasks t ON t.id = h.task_id
JOIN mes.machines m ON m.id = t.machine_id
JOIN mes.organizations o ON o.id = h.organization_id
JOIN mes.plants p ON p.id = t.plant_id
LEFT JOIN mes.users a ON a.id = t.assignee_id
WHERE h.id = ANY(%(ids)s)
ORDER BY h.at, h.id
"""


def task_events(conn: psycopg.Connection, history_ids: Sequence[uuid.UUID]
                ) -> list[tuple[uuid.UUID, str, str, dict[str, Any]]]:
    """(history id, organization code, plant code, document) per history row, oldest first."""
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(
        _EVENTS, {"v": SCHEMA_VERSION, "ids": list(history_ids)}).fetchall()]


def topic(organization: str, plant: str, kind: str = "task") -> str:
    """Where a plant's task events (`task`) or its retained summary (`summary`) go."""
    return f"mes/v1/{organization}/{plant}/maintenance/{kind}"


_SUMMARY = """
SELECT o.code, p.code, jsonb_build_object(
    'v', %(v)s::int,
    'at', %(now)s::timestamptz,
    'organization', o.code,
    'plant', p.code,
    'open', count(t.id),
    'by_status', jsonb_build_object(
        'open', count(t.id) FILTER (WHERE t.status = 'open'),
        'acknowledged', count(t.id) FILTER (WHERE t.status = 'acknowledged'),
        'in_progress', count(t.id) FILTER (WHERE t.status = 'in_progress')),
    'by_kind', jsonb_build_object(
        'preventive', count(t.id) FILTER (WHERE t.task_kind = 'preventive'),
        'condition', count(t.id) FILTER (WHERE t.task_kind = 'condition'),
        'corrective', count(t.id) FILTER (WHERE t.task_kind = 'corrective')),
    'by_priority', jsonb_build_object(
        'low', count(t.id) FILTER (WHERE t.priority = 'low'),
        'normal', count(t.id) FILTER (WHERE t.priority = 'normal'),
        'high', count(t.id) FILTER (WHERE t.priority = 'high'),
        'urgent', count(t.id) FILTER (WHERE t.priority = 'urgent')),
    'overdue', count(t.id) FILTER (WHERE t.overdue_at < %(now)s),
    'oldest_due_at', min(t.due_at))
FROM mes.plants p
JOIN mes.organizations o ON o.id = p.organization_id
LEFT JOIN mes.pm_tasks t ON t.plant_id = p.id AND t.status = ANY(%(open)s)
WHERE p.id = %(plant)s
GROUP BY o.code, p.code
"""


def summary(conn: psycopg.Connection, plant: uuid.UUID, now: datetime
            ) -> tuple[str, str, dict[str, Any]] | None:
    """(organization code, plant code, document) of the plant's open tasks, or None when the
    plant is not in the caller's tenant context."""
    row = conn.execute(_SUMMARY, {"v": SCHEMA_VERSION, "now": now, "plant": plant,
                                  "open": list(OPEN)}).fetchone()
    return (row[0], row[1], row[2]) if row else None
