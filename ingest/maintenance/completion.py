"""The meter a completed task records: the schedule's meter, read from landed rows, in the
frame its tasks use (since the anchor, or since the previous task for floating and combined
schedules). The lifecycle itself is core.maintenance.lifecycle; the engine hands it this."""

from __future__ import annotations

import uuid
from datetime import datetime

import psycopg

from core.maintenance.lifecycle import CLOSED
from ingest.maintenance.meters import Meters
from ingest.maintenance.raising import load_targets


def meter_at_completion(conn: psycopg.Connection, schedule: uuid.UUID | None, machine: uuid.UUID,
           occurrence: int, now: datetime) -> float | None:
    """The schedule's meter at completion, in the frame its tasks use (a
    lifecycle.MeterAt)."""
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
