"""Raise the tasks schedules owe, exactly once.

For every (schedule, machine) pair, inside one tenant transaction: decide (triggers.py) from
the pair's last task and its meter; for the pairs that owe a task, take a transaction-level
advisory lock on the pair (in a fixed order, so two engines never deadlock), read the last
task again, decide again and insert with ON CONFLICT DO NOTHING. The lock makes a
second engine wait and then decide from what the first committed, so it never raises the same
occurrence (the unique key would refuse it anyway) and never skips one (it sees the new last
task). A crash between deciding and committing leaves nothing: the next run decides again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from core.maintenance.calendar import Calendar
from ingest.maintenance.meters import Checkpoint, Key, Meters
from ingest.maintenance.settling import Settling
from ingest.maintenance.triggers import Draft, Last, Schedule, decide, meter_since

# The (schedule, machine) pairs: a few columns per pair; a schedule's own columns are read
# (_SCHEDULE_ROWS) only when it is new to this process or changed since (its updated_at).
_PAIRS = """
SELECT s.id, s.updated_at, coalesce(p.timezone, 'UTC'), m.id, m.organization_id, m.plant_id
FROM mes.pm_schedules s
JOIN mes.machines m ON m.organization_id = s.organization_id
     AND (m.id = s.machine_id
          OR (s.machine_kind IS NOT NULL AND m.kind = s.machine_kind AND m.plant_id = s.plant_id))
LEFT JOIN mes.plants p ON p.id = m.plant_id
WHERE s.is_active AND m.is_active
  AND (%(machines)s::uuid[] IS NULL OR m.id = ANY(%(machines)s))
  AND (%(kinds)s::text[] IS NULL OR s.trigger_kind = ANY(%(kinds)s))
ORDER BY s.id, m.id
"""

_SCHEDULE_ROWS = """
SELECT id, name, trigger_kind, schedule_mode, anchor_at, anchor_meter,
       calendar_every, calendar_unit, cron, lead_time, interval_value, lead_value,
       meter_kind, counter_tag, tolerance_pct, catch_up,
       checklist::text, priority, estimated_minutes, default_assignee_id
FROM mes.pm_schedules WHERE id = ANY(%s)
"""

_LAST = """
SELECT DISTINCT ON (schedule_id, machine_id) schedule_id, machine_id, occurrence, due_at,
       status, coalesce(completed_at, skipped_at)
FROM mes.pm_tasks
WHERE schedule_id = ANY(%(schedules)s) AND machine_id = ANY(%(machines)s)
ORDER BY schedule_id, machine_id, occurrence DESC
"""

_INSERT = """
INSERT INTO mes.pm_tasks (organization_id, plant_id, schedule_id, machine_id, occurrence,
    task_kind, title, due_at, due_meter, meter_at_raise, overdue_at, overdue_meter,
    missed_occurrences, raised_by, priority, checklist, estimated_minutes, assignee_id)
VALUES (%(org)s, %(plant)s, %(schedule)s, %(machine)s, %(occurrence)s, 'preventive',
    %(title)s, %(due_at)s, %(due_meter)s, %(meter_at_raise)s, %(overdue_at)s,
    %(overdue_meter)s, %(missed)s, %(raised_by)s, %(priority)s, %(checklist)s,
    %(estimated)s, %(assignee)s)
ON CONFLICT DO NOTHING
RETURNING id
"""


@dataclass(frozen=True)
class Copied:
    """What a task copies from its schedule."""

    checklist: str  # the template as JSON text, parsed only to raise a task
    priority: str
    estimated_minutes: int | None
    assignee_id: uuid.UUID | None


@dataclass(frozen=True)
class Target:
    """One schedule on one machine, with what a task copies from the schedule."""

    schedule: Schedule
    copied: Copied
    machine_id: uuid.UUID
    organization_id: uuid.UUID
    plant_id: uuid.UUID | None


# Schedules as read, by (id, updated_at, time zone): a changed schedule (updated_at moves on
# every update, trigger of 0002) or plant zone is a new key, so an entry is never stale.
_schedules: dict[tuple[uuid.UUID, datetime, str], tuple[Schedule, Copied]] = {}
_SCHEDULES_MAX = 100_000


def lock_pairs(conn: psycopg.Connection, namespace: str,
               pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """Transaction-level advisory locks on (source, machine) pairs, taken in sorted order so
    that two engines locking overlapping sets never deadlock."""
    keys = sorted(f"{namespace}:{a}:{b}" for a, b in pairs)
    if keys:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                     "FROM unnest(%s::text[]) WITH ORDINALITY AS t(k, i) ORDER BY i", (keys,))


def checklist_items(template: list[Any]) -> list[dict[str, Any]]:
    """A task's checklist from a template: each item (text or {item: ...}) not done yet."""
    return [{"item": i["item"] if isinstance(i, dict) else str(i), "done": False}
            for i in template]


def load_targets(conn: psycopg.Connection, machines: Sequence[uuid.UUID] | None,
                 kinds: Sequence[str] | None) -> list[Target]:
    """Active schedules on active machines of the tenant (of `machines`, of trigger `kinds`)."""
    pairs = conn.execute(_PAIRS, {"machines": list(machines) if machines else None,
                                  "kinds": list(kinds) if kinds else None}).fetchall()
    # A schedule has one zone: its machine's plant, or its own plant for a kind.
    missing = {k[0]: k for k in {(r[0], r[1], r[2]) for r in pairs} - _schedules.keys()}
    if missing:
        if len(_schedules) + len(missing) > _SCHEDULES_MAX:
            _schedules.clear()
        for r in conn.execute(_SCHEDULE_ROWS, (list(missing),)):
            key = missing[r[0]]
            _schedules[key] = _schedule(r, ZoneInfo(key[2]))
    return [Target(*_schedules[(r[0], r[1], r[2])], r[3], r[4], r[5]) for r in pairs]


def _schedule(r: Sequence[Any], tz: ZoneInfo) -> tuple[Schedule, Copied]:
    calendar = Calendar(tz, r[6], r[7], r[8]) if r[6] is not None or r[8] is not None else None
    kind = r[2]
    schedule = Schedule(
        id=r[0], name=r[1], trigger_kind=kind, mode=r[3], anchor_at=r[4],
        anchor_meter=float(r[5]), calendar=calendar, lead_time=r[9] or timedelta(0),
        interval=float(r[10]) if r[10] is not None else None, lead_value=float(r[11]),
        meter_kind=r[12] or (kind if kind in ("runtime_hours", "cycles") else None),
        counter_tag=r[13], tolerance_pct=float(r[14]), catch_up=r[15])
    return schedule, Copied(r[16], r[17], r[18], r[19])


def last_tasks(conn: psycopg.Connection, targets: Sequence[Target]
               ) -> dict[tuple[uuid.UUID, uuid.UUID], Last]:
    """The last task of each (schedule, machine) of `targets` that has one."""
    return {(r[0], r[1]): Last(r[2], r[3], r[4], r[5]) for r in conn.execute(
        _LAST, {"schedules": list({t.schedule.id for t in targets}),
                "machines": list({t.machine_id for t in targets})})}


def raise_due(conn: psycopg.Connection, targets: Sequence[Target], now: datetime,
              checkpoints: MutableMapping[Key, Checkpoint] | None = None,
              cached: bool = False, settling: Settling | None = None) -> list[uuid.UUID]:
    """Within the caller's tenant transaction: decide for every target, then lock, decide
    again and insert for those that owe a task; returns the ids of the tasks raised now.
    Meters start from `checkpoints` where they can and leave new ones there; with `settling`,
    from the stored ones, storing new ones (meters.py).
    `cached`: the targets were read earlier (the engine keeps them between sweeps): those
    that owe are read again under the lock, so a schedule changed or disabled meanwhile
    raises what it is now."""
    if not targets:
        return []
    meters = Meters(conn, now, checkpoints, settling)
    last = last_tasks(conn, targets)
    needed = ((t, meter_since(t.schedule, last.get((t.schedule.id, t.machine_id))))
              for t in targets)
    meters.prefetch((t.machine_id, t.schedule.meter_kind, t.schedule.counter_tag, since)
                    for t, since in needed if since is not None and t.schedule.meter_kind)
    # Without locks first: most pairs owe nothing, and what a pair owes only shrinks when
    # another engine raises meanwhile (or, closing a floating task, grows: then the next
    # evaluation raises it). The pairs that owe are locked, their last task read again in
    # a new snapshot (READ COMMITTED) and decided again: exactly once (module docstring).
    owed = [t for t in targets if _drafts(t, last, now, meters)]
    if not owed:
        return []
    lock_pairs(conn, "pm", [(t.schedule.id, t.machine_id) for t in owed])
    if cached:
        keys = {(t.schedule.id, t.machine_id) for t in owed}
        owed = [t for t in load_targets(conn, list({t.machine_id for t in owed}), None)
                if (t.schedule.id, t.machine_id) in keys]
    last = last_tasks(conn, owed)
    raised = []
    for t in owed:
        for draft in _drafts(t, last, now, meters):
            row = conn.execute(_INSERT, _params(t, draft)).fetchone()
            if row:
                raised.append(row[0])
    return raised


def _drafts(t: Target, last: dict[tuple[uuid.UUID, uuid.UUID], Last], now: datetime,
            meters: Meters) -> list[Draft]:
    s = t.schedule

    def meter(since: datetime) -> float:
        if s.meter_kind is None:
            return 0.0
        return meters.reading(t.machine_id, s.meter_kind, s.counter_tag, since)

    return decide(s, last.get((s.id, t.machine_id)), now, meter)


def _params(t: Target, d: Draft) -> dict[str, Any]:
    c = t.copied
    return {"org": t.organization_id, "plant": t.plant_id, "schedule": t.schedule.id,
            "machine": t.machine_id, "occurrence": d.occurrence, "title": t.schedule.name,
            "due_at": d.due_at, "due_meter": d.due_meter, "meter_at_raise": d.meter_at_raise,
            "overdue_at": d.overdue_at, "overdue_meter": d.overdue_meter, "missed": d.missed,
            "raised_by": d.raised_by, "priority": c.priority,
            "checklist": Jsonb(checklist_items(json.loads(c.checklist))),
            "estimated": c.estimated_minutes, "assignee": c.assignee_id}
