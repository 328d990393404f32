"""A task's lifecycle: open -> acknowledged -> in_progress -> done, or skipped (with a reason)
from any open status; each step records who (the unit of work's user, a `users` row) and when.
The history row of each step is written by the database (trigger on mes.pm_tasks).

Completing records the meter reading in the schedule's frame (meter schedules) and, for a
floating schedule, is the new baseline: the next occurrence counts from `completed_at`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import psycopg

from core.errors import UserFacingError
from ingest.maintenance.meters import Meters
from ingest.maintenance.raising import load_targets
from ingest.maintenance.triggers import CLOSED

# Which status each step moves to, and from which it may be taken.
STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "acknowledge": ("acknowledged", ("open",)),
    "start": ("in_progress", ("open", "acknowledged")),
    "complete": ("done", ("open", "acknowledged", "in_progress")),
    "skip": ("skipped", ("open", "acknowledged", "in_progress")),
}

_COLUMNS = {
    "acknowledge": "acknowledged_by_user_id = %(user)s, acknowledged_at = %(now)s",
    "start": "started_by_user_id = %(user)s, started_at = %(now)s",
    "complete": "completed_by_user_id = %(user)s, completed_at = %(now)s, "
                "meter_at_completion = %(meter)s",
    "skip": "skipped_by_user_id = %(user)s, skipped_at = %(now)s, skip_reason = %(reason)s",
}


class TransitionRefused(UserFacingError):
    """A step the task's status does not allow, or a skip without a reason."""


def transition(conn: psycopg.Connection, task_id: uuid.UUID, step: str, user: uuid.UUID,
               now: datetime, reason: str | None = None) -> str:
    """Take `step` on the task (inside the caller's tenant transaction); returns the new
    status. Raises TransitionRefused when the status or a missing reason forbids it."""
    target, sources = STEPS[step]
    row = conn.execute("SELECT status, schedule_id, machine_id, occurrence FROM mes.pm_tasks "
                       "WHERE id = %s FOR UPDATE", (task_id,)).fetchone()
    if row is None:
        raise TransitionRefused(f"no task {task_id} in this plant")
    status, schedule, machine, occurrence = row
    if status not in sources:
        raise TransitionRefused(f"cannot {step} a task that is {status}")
    if step == "skip" and not (reason and reason.strip()):
        raise TransitionRefused("skipping a task needs a reason")
    meter = _meter(conn, schedule, machine, occurrence, now) if step == "complete" else None
    conn.execute(f"UPDATE mes.pm_tasks SET status = %(status)s, {_COLUMNS[step]} "
                 "WHERE id = %(id)s", {"status": target, "user": user, "now": now,
                                       "meter": meter, "reason": reason, "id": task_id})
    return target


def _meter(conn: psycopg.Connection, schedule: uuid.UUID | None, machine: uuid.UUID,
           occurrence: int, now: datetime) -> float | None:
    """The schedule's meter at completion, in the frame its tasks use."""
    if schedule is None:
        return None
    target = next((t for t in load_targets(conn, [machine], None) if t.schedule.id == schedule),
                  None)
    if target is None or target.schedule.meter_kind is None:
        return None
    s = target.schedule
    since, used = s.anchor_at, s.anchor_meter
    if s.mode == "floating" or s.trigger_kind == "combined":
        previous = conn.execute(
            "SELECT coalesce(completed_at, skipped_at), due_at, status FROM mes.pm_tasks "
            "WHERE schedule_id = %s AND machine_id = %s AND occurrence < %s "
            "ORDER BY occurrence DESC LIMIT 1", (schedule, machine, occurrence)).fetchone()
        if previous is not None:
            closed = previous[2] in CLOSED
            since = (previous[0] if s.mode == "floating" and closed else previous[1]) or since
            used = 0.0
    return used + Meters(conn, now).reading(machine, s.meter_kind, s.counter_tag, since)
