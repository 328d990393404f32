"""Corrective work from downtime: a stop (a row of the tenant's downtime events) in one of a
rule's states, with a reason in its `reason_codes` or lasting at least `min_duration_s` (a stop
still open counts its time up to now), opens one corrective task linked to the event. The
event's id is unique among tasks, so an event that is updated later (its end arrives, the
ingest upserts it) or matched by a second rule, or seen by two engines, raises nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from ingest.maintenance.raising import checklist_items

_DUE = """
SELECT DISTINCT ON (e.event_id)
       e.organization_id, e.plant_id, e.machine_id, e.event_id, e.started_at, e.ended_at,
       e.state, e.reason_code, r.id, r.name, r.checklist, r.priority, r.default_assignee_id
FROM mes.pm_corrective_rules r
JOIN mes.v_downtime_event e ON e.organization_id = r.organization_id
     AND (r.plant_id IS NULL OR e.plant_id = r.plant_id)
     AND e.started_at >= r.active_from AND e.state = ANY(r.states)
WHERE r.is_active
  AND (%(machines)s::uuid[] IS NULL OR e.machine_id = ANY(%(machines)s))
  AND (e.reason_code = ANY(coalesce(r.reason_codes, '{}'))
       OR extract(epoch FROM coalesce(e.ended_at, %(now)s) - e.started_at) >= r.min_duration_s)
  AND NOT EXISTS (SELECT 1 FROM mes.pm_tasks t WHERE t.downtime_event_id = e.event_id)
ORDER BY e.event_id, r.created_at, r.id
"""

_INSERT = """
INSERT INTO mes.pm_tasks (organization_id, plant_id, machine_id, occurrence, task_kind,
    title, corrective_rule_id, downtime_event_id, due_at, raised_by, priority, checklist,
    evidence, assignee_id)
VALUES (%(org)s, %(plant)s, %(machine)s, 1, 'corrective', %(title)s, %(rule)s, %(event)s,
    %(due_at)s, 'downtime', %(priority)s, %(checklist)s, %(evidence)s, %(assignee)s)
ON CONFLICT DO NOTHING
RETURNING id
"""


def evaluate(conn: psycopg.Connection, machines: Sequence[uuid.UUID] | None, now: datetime
             ) -> list[uuid.UUID]:
    """Open the corrective tasks due for the tenant's downtime events (of `machines`)."""
    raised = []
    for (org, plant, machine, event, started, ended, state, reason, rule, name, checklist,
         priority, assignee) in conn.execute(_DUE, {"machines": machines, "now": now}):
        evidence = [{"event_id": str(event), "state": state, "reason_code": reason,
                     "started_at": started.isoformat(),
                     "ended_at": ended.isoformat() if ended else None}]
        title = f"{name}: {state}" + (f" {reason}" if reason else "")
        row = conn.execute(_INSERT, {
            "org": org, "plant": plant, "machine": machine, "title": title[:200], "rule": rule,
            "event": event, "due_at": started, "priority": priority,
            "checklist": Jsonb(checklist_items(checklist)), "evidence": Jsonb(evidence),
            "assignee": assignee}).fetchone()
        if row:
            raised.append(row[0])
    return raised
