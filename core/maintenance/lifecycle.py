"""A task's lifecycle: open -> acknowledged -> in_progress -> done, or skipped (with a reason)
from any open status; each step records who (the unit of work's user, a `users` row) and when.
The history row of each step is written by the database (trigger on mes.pm_tasks).

Completing records the meter reading (given, or read by the caller's `meter_at`: the engine
reads it in the schedule's frame from landed rows) and, for a floating schedule, is the new
baseline: the next occurrence counts from `completed_at`. Checklist items are ticked one by one
(`tick`) while the task is open.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from core.errors import UserFacingError

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


OPEN = ("open", "acknowledged", "in_progress")
CLOSED = ("done", "skipped", "cancelled")

# (conn, schedule id or None, machine id, occurrence, now) -> the meter at completion.
MeterAt = Callable[[psycopg.Connection, uuid.UUID | None, uuid.UUID, int, datetime],
                   float | None]


class TransitionRefused(UserFacingError):
    """A step the task's status does not allow, or a skip without a reason."""


def transition(conn: psycopg.Connection, task_id: uuid.UUID, step: str, user: uuid.UUID,
               now: datetime, reason: str | None = None, *, meter: float | None = None,
               meter_at: MeterAt | None = None) -> str:
    """Take `step` on the task (inside the caller's tenant transaction); returns the new
    status. Completing records `meter` or else what `meter_at` reads. Raises
    TransitionRefused when the status or a missing reason forbids it."""
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
    if step == "complete" and meter is None and meter_at is not None:
        meter = meter_at(conn, schedule, machine, occurrence, now)
    conn.execute(f"UPDATE mes.pm_tasks SET status = %(status)s, {_COLUMNS[step]} "
                 "WHERE id = %(id)s", {"status": target, "user": user, "now": now,
                                       "meter": meter, "reason": reason, "id": task_id})
    return target


def tick(conn: psycopg.Connection, task_id: uuid.UUID, index: int, done: bool) -> list:
    """Tick (or untick) checklist item `index` of an open task (inside the caller's tenant
    transaction); returns the checklist. The history trigger records the change."""
    row = conn.execute("SELECT status, checklist FROM mes.pm_tasks WHERE id = %s FOR UPDATE",
                       (task_id,)).fetchone()
    if row is None:
        raise TransitionRefused(f"no task {task_id} in this plant")
    status, checklist = row
    if status not in OPEN:
        raise TransitionRefused(f"cannot tick the checklist of a task that is {status}")
    if not 0 <= index < len(checklist):
        raise TransitionRefused(f"the task has no checklist item {index}")
    checklist[index] = {**checklist[index], "done": done}
    conn.execute("UPDATE mes.pm_tasks SET checklist = %s WHERE id = %s",
                 (Jsonb(checklist), task_id))
    return checklist
