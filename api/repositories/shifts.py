"""Shifts and handovers: logged by the outgoing shift, acknowledged by someone else; a
handover carries the shift's stops and the maintenance tasks still open."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.deps import Page
from api.pagination import paginate
from api.problems import Conflict, Invalid
from api.repositories.base import add, change, get_or_404, tenant_of
from api.repositories.downtime import with_reasons
from api.schemas.maintenance import TaskOut
from api.schemas.shifts import ShiftOut, ShiftSummary
from core.maintenance.lifecycle import OPEN
from core.models import Machine, PmTask, Shift, ShiftHandover
from core.models.views import DowntimeEventView as E


def list_shifts(session: Session, *, page: Page, sort: str, start: datetime | None,
                end: datetime | None) -> tuple[list[Shift], str | None]:
    stmt = select(Shift)
    if start is not None:
        stmt = stmt.where(Shift.ends_at > start)
    if end is not None:
        stmt = stmt.where(Shift.starts_at < end)
    return paginate(session, stmt, page=page, sort=sort, tiebreak=Shift.id,
                    columns={"starts_at": Shift.starts_at, "created_at": Shift.created_at})


def get_shift(session: Session, *, shift_id: uuid.UUID) -> Shift:
    return get_or_404(session, Shift, shift_id, what="shift")


def create_shift(session: Session, *, values: dict[str, Any]) -> Shift:
    if values["ends_at"] <= values["starts_at"]:
        raise Invalid("ends_at", "must be after starts_at")
    plant_id = values.pop("plant_id", None)
    return add(session, Shift(**values), plant_id=plant_id)


def summary(session: Session, *, shift_id: uuid.UUID) -> ShiftSummary:
    """The stops during the shift and the open tasks, on the shift's plant's machines (every
    machine in scope for an organization-wide shift)."""
    shift = get_shift(session, shift_id=shift_id)
    machines = select(Machine.id)
    if shift.plant_id is not None:
        machines = machines.where(Machine.plant_id == shift.plant_id)
    stops = list(session.scalars(
        select(E).where(E.machine_id.in_(machines), E.started_at < shift.ends_at,
                        or_(E.ended_at.is_(None), E.ended_at > shift.starts_at))
        .order_by(E.started_at, E.event_id)))
    tasks = session.scalars(select(PmTask).where(PmTask.machine_id.in_(machines),
                                                 PmTask.status.in_(OPEN))
                            .order_by(PmTask.due_at.nulls_last(), PmTask.id))
    return ShiftSummary(shift=ShiftOut.model_validate(shift),
                        stops=with_reasons(session, stops),
                        open_tasks=[TaskOut.model_validate(t) for t in tasks])


def list_handovers(session: Session, *, page: Page, sort: str, shift_id: uuid.UUID | None,
                   acknowledged: bool | None) -> tuple[list[ShiftHandover], str | None]:
    stmt = select(ShiftHandover)
    if shift_id is not None:
        stmt = stmt.where(ShiftHandover.shift_id == shift_id)
    if acknowledged is not None:
        column = ShiftHandover.acknowledged_at
        stmt = stmt.where(column.is_not(None) if acknowledged else column.is_(None))
    return paginate(session, stmt, page=page, sort=sort, tiebreak=ShiftHandover.id,
                    columns={"logged_at": ShiftHandover.logged_at})


def get_handover(session: Session, *, handover_id: uuid.UUID,
                 lock: bool = False) -> ShiftHandover:
    return get_or_404(session, ShiftHandover, handover_id, what="handover", lock=lock)


def log_handover(session: Session, *, shift_id: uuid.UUID, notes: str) -> ShiftHandover:
    shift = get_shift(session, shift_id=shift_id)
    handover = ShiftHandover(shift_id=shift.id, notes=notes,
                             logged_by_user_id=tenant_of(session).user_id)
    return add(session, handover, plant_id=shift.plant_id)


def acknowledge(session: Session, *, handover_id: uuid.UUID) -> ShiftHandover:
    """The incoming shift confirms it read the handover: once, and not by its author."""
    handover = get_handover(session, handover_id=handover_id, lock=True)
    user = tenant_of(session).user_id
    if handover.acknowledged_at is not None:
        raise Conflict("the handover was already acknowledged")
    if handover.logged_by_user_id == user:
        raise Conflict("a handover is acknowledged by someone other than who logged it")
    return change(session, handover, {"acknowledged_by_user_id": user,
                                      "acknowledged_at": datetime.now(UTC)})
