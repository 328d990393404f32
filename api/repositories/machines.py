"""Machines: the registry's rows, their current state, timeline and time in state (read from
the tenant views over the time series)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from api.deps import Page
from api.pagination import paginate
from api.problems import Invalid, NotFound
from api.repositories.base import change, get_or_404
from api.schemas.machines import CurrentState, Segment, TimeInState
from core.models import Machine
from core.models.views import StatusHistoryView

# Planned production time leaves out planned stops; unknown time (offline) is in no total.
NOT_PLANNED_TIME = {"planned_stop", "offline"}
HOUR = timedelta(hours=1)


def list_machines(session: Session, *, page: Page, sort: str, plant_id: uuid.UUID | None,
                  kind: str | None, active: bool | None) -> tuple[list[Machine], str | None]:
    stmt = select(Machine)
    if plant_id is not None:
        stmt = stmt.where(Machine.plant_id == plant_id)
    if kind is not None:
        stmt = stmt.where(Machine.kind == kind)
    if active is not None:
        stmt = stmt.where(Machine.is_active == active)
    return paginate(session, stmt, page=page, sort=sort, tiebreak=Machine.id,
                    columns={"code": Machine.code, "name": Machine.name,
                             "created_at": Machine.created_at})


def get_machine(session: Session, *, machine_id: uuid.UUID) -> Machine:
    return get_or_404(session, Machine, machine_id, what="machine")


def update_machine(session: Session, *, machine_id: uuid.UUID,
                   values: dict[str, Any]) -> Machine:
    return change(session, get_machine(session, machine_id=machine_id), values)


def current_state(session: Session, *, machine_id: uuid.UUID) -> CurrentState:
    """The latest sample, and the first sample of the run of that state it ends."""
    get_machine(session, machine_id=machine_id)
    h = StatusHistoryView
    last = session.scalars(select(h).where(h.machine_id == machine_id)
                           .order_by(h.ts.desc()).limit(1)).first()
    if last is None:
        raise NotFound(f"machine {machine_id} has reported no state yet")
    changed = session.scalar(select(func.max(h.ts)).where(h.machine_id == machine_id,
                                                          h.state != last.state))
    run = select(func.min(h.ts)).where(h.machine_id == machine_id)
    since = session.scalar(run if changed is None else run.where(h.ts > changed))
    return CurrentState(machine_id=machine_id, state=last.state, reason_code=last.reason_code,
                        since=since or last.ts, last_seen=last.ts)


def _check_range(start: datetime, end: datetime, *, max_days: int) -> None:
    if end <= start:
        raise Invalid("end", "must be after start")
    if end - start > timedelta(days=max_days):
        raise Invalid("end", f"a range covers at most {max_days} days")


def timeline(session: Session, *, machine_id: uuid.UUID, start: datetime,
             end: datetime) -> list[Segment]:
    """States from `start` to `end`: the state held at `start` (from the last sample before
    it), then one segment per change; a sample repeating the state extends its segment."""
    _check_range(start, end, max_days=31)
    get_machine(session, machine_id=machine_id)
    h = StatusHistoryView
    before = session.scalars(select(h).where(h.machine_id == machine_id, h.ts < start)
                             .order_by(h.ts.desc()).limit(1)).first()
    rows = list(session.scalars(select(h).where(h.machine_id == machine_id, h.ts >= start,
                                                h.ts < end).order_by(h.ts)))
    samples = ([(start, before.state, before.reason_code)] if before else []) + \
        [(r.ts, r.state, r.reason_code) for r in rows]
    segments: list[Segment] = []
    for ts, state, reason in samples:
        if segments and segments[-1].state == state and segments[-1].reason_code == reason:
            continue
        if segments:
            segments[-1].end = ts
        segments.append(Segment(state=state, start=ts, end=None, reason_code=reason))
    if segments and end <= datetime.now(UTC):
        segments[-1].end = end
    return segments


def _hour_floor(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(minute=0, second=0, microsecond=0)


def time_in_state(session: Session, *, machine_id: uuid.UUID, start: datetime,
                  end: datetime) -> TimeInState:
    """Seconds per state over whole UTC hours covering the range: the hourly view's figures,
    read by mes.machine_time_in_state (sql/0018) from the range's own rows."""
    _check_range(start, end, max_days=366)
    get_machine(session, machine_id=machine_id)
    first = _hour_floor(start)
    last = _hour_floor(end) + (HOUR if _hour_floor(end) != end.astimezone(UTC) else timedelta())
    rows = session.execute(text("SELECT state, seconds FROM mes.machine_time_in_state(:m, :s, :e)"),
                           {"m": machine_id, "s": first, "e": last})
    seconds = {state: float(total) for state, total in rows}
    planned = sum(s for state, s in seconds.items() if state not in NOT_PLANNED_TIME)
    return TimeInState(machine_id=machine_id, start=first, end=last, seconds=seconds,
                       planned_production_seconds=planned,
                       availability=seconds.get("running", 0.0) / planned if planned else None)


def latest_counters(session: Session, *, machine_id: uuid.UUID) -> dict[str, float]:
    """Each counter tag's latest value (the board's counters, a meter reading's default)."""
    get_machine(session, machine_id=machine_id)
    rows = session.execute(text(
        "SELECT DISTINCT ON (tag) tag, value FROM mes.v_machine_counter"
        " WHERE machine_id = :m ORDER BY tag, ts DESC"), {"m": machine_id})
    return {tag: value for tag, value in rows}
