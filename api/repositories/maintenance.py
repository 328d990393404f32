"""Preventive maintenance as the API sees it: schedules, and the tasks the maintenance engine
raises from them. Thin on purpose: a schedule is validated and written, and a task takes its
lifecycle steps, by the same code the engine uses (core/maintenance); when a task falls due is
the engine's business (ingest/maintenance)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import Page
from api.pagination import paginate
from api.problems import Conflict, Invalid
from api.repositories.base import change, check_version, get_or_404, require, tenant_of
from core.maintenance.lifecycle import TransitionRefused, tick, transition
from core.maintenance.schedules import ScheduleRefused, ScheduleSpec, insert_schedule
from core.models import Plant, PmSchedule, PmTask, User


def _driver(session: Session) -> psycopg.Connection:
    """The unit of work's own psycopg connection (same transaction, same tenant), for the
    shared maintenance code in core.maintenance."""
    return session.connection().connection.driver_connection


def list_schedules(session: Session, *, page: Page, sort: str, machine_id: uuid.UUID | None,
                   active: bool | None) -> tuple[list[PmSchedule], str | None]:
    stmt = select(PmSchedule)
    if machine_id is not None:
        stmt = stmt.where(PmSchedule.machine_id == machine_id)
    if active is not None:
        stmt = stmt.where(PmSchedule.is_active == active)
    return paginate(session, stmt, page=page, sort=sort, tiebreak=PmSchedule.id,
                    columns={"name": PmSchedule.name, "created_at": PmSchedule.created_at})


def get_schedule(session: Session, *, schedule_id: uuid.UUID, lock: bool = False) -> PmSchedule:
    return get_or_404(session, PmSchedule, schedule_id, what="PM schedule", lock=lock)


def create_schedule(session: Session, *, spec: ScheduleSpec, plant_id: uuid.UUID | None
                    ) -> PmSchedule:
    """Insert a validated spec in `plant_id` (or the caller's plant); 422 naming the field
    when the plant, machine or assignee is not there."""
    tenant = tenant_of(session)
    plant = require(session, Plant, plant_id or tenant.plant_id, field="plant_id")
    if plant is None:
        raise Invalid("plant_id", "name the plant of the schedule")
    try:
        schedule_id = insert_schedule(_driver(session), spec, tenant.organization_id, plant.id)
    except ScheduleRefused as e:
        raise Invalid("assignee" if "user" in str(e) else "machine", str(e)) from None
    return get_schedule(session, schedule_id=schedule_id)


def update_schedule(session: Session, *, schedule_id: uuid.UUID, values: dict[str, Any],
                    if_match: str | None) -> PmSchedule:
    schedule = get_schedule(session, schedule_id=schedule_id, lock=True)
    check_version(schedule, if_match)
    return change(session, schedule, values)


def deactivate_schedule(session: Session, *, schedule_id: uuid.UUID) -> PmSchedule:
    """Schedules are never deleted (their tasks keep pointing at them): they stop raising."""
    return change(session, get_schedule(session, schedule_id=schedule_id, lock=True),
                  {"is_active": False})


def list_tasks(session: Session, *, page: Page, sort: str, status: list[str],
               machine_id: uuid.UUID | None, assignee_id: uuid.UUID | None,
               due_from: datetime | None, due_to: datetime | None
               ) -> tuple[list[PmTask], str | None]:
    stmt = select(PmTask)
    if status:
        stmt = stmt.where(PmTask.status.in_(status))
    for column, value in ((PmTask.machine_id, machine_id), (PmTask.assignee_id, assignee_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    if due_from is not None:
        stmt = stmt.where(PmTask.due_at >= due_from)
    if due_to is not None:
        stmt = stmt.where(PmTask.due_at < due_to)
    return paginate(session, stmt, page=page, sort=sort, tiebreak=PmTask.id,
                    columns={"created_at": PmTask.created_at, "updated_at": PmTask.updated_at})


def get_task(session: Session, *, task_id: uuid.UUID, lock: bool = False) -> PmTask:
    return get_or_404(session, PmTask, task_id, what="PM task", lock=lock)


def act(session: Session, *, task_id: uuid.UUID, action: str, if_match: str | None,
        meter: float | None = None, reason: str | None = None, notes: str | None = None
        ) -> PmTask:
    """Take lifecycle step `action` (core.maintenance.lifecycle) on a task, locked: of two
    technicians completing one task, the second waits for the first and then gets 409 (or
    412 with a stale If-Match)."""
    task = get_task(session, task_id=task_id, lock=True)
    check_version(task, if_match)
    user = tenant_of(session).user_id
    assert user is not None
    # Acknowledging takes the task; any other step by an unassigned task's worker too.
    assignee = user if action == "acknowledge" else task.assignee_id or user
    try:
        transition(_driver(session), task_id, action, user, datetime.now(UTC), reason,
                   meter=meter)
    except TransitionRefused as e:
        raise Conflict(str(e)) from None
    session.refresh(task)
    values: dict[str, Any] = {"notes": notes} if notes else {}
    if task.assignee_id != assignee:
        values["assignee_id"] = assignee
    return change(session, task, values)


def tick_item(session: Session, *, task_id: uuid.UUID, index: int, done: bool,
              if_match: str | None) -> PmTask:
    """Tick (or untick) checklist item `index` of an open task: 409 once it is closed."""
    task = get_task(session, task_id=task_id, lock=True)
    check_version(task, if_match)
    if not 0 <= index < len(task.checklist):
        raise Invalid("index", f"the task has {len(task.checklist)} checklist item(s)")
    try:
        tick(_driver(session), task_id, index, done)
    except TransitionRefused as e:
        raise Conflict(str(e)) from None
    session.refresh(task)
    return task


def assign_task(session: Session, *, task_id: uuid.UUID, assignee_id: uuid.UUID) -> PmTask:
    task = get_task(session, task_id=task_id, lock=True)
    require(session, User, assignee_id, field="assignee_id")
    return change(session, task, {"assignee_id": assignee_id})
