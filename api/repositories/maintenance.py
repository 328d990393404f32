"""Preventive maintenance as the API sees it: schedules, and the tasks the maintenance engine
raises from them. Thin on purpose: when a task falls due and what its completion does to the
schedule (a floating schedule counts from it) is the engine's business (ingest/maintenance)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import Page
from api.pagination import paginate
from api.problems import Conflict
from api.repositories.base import add, change, check_version, get_or_404, require, tenant_of
from core.models import Machine, PmSchedule, PmTask, User

# Which status each action may start from, and what it leads to.
ACTIONS: dict[str, tuple[set[str], str]] = {
    "acknowledge": ({"open", "in_progress"}, ""),
    "start": ({"open"}, "in_progress"),
    "complete": ({"open", "in_progress"}, "done"),
    "skip": ({"open", "in_progress"}, "skipped"),
}


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


def create_schedule(session: Session, *, values: dict[str, Any]) -> PmSchedule:
    machine = require(session, Machine, values["machine_id"], field="machine_id")
    if values.get("anchor_at") is None:
        values.pop("anchor_at", None)
    return add(session, PmSchedule(**values), plant_id=machine.plant_id)


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
        values: dict[str, Any] | None = None) -> PmTask:
    """Apply `action` to a task, locked: of two technicians completing one task, the second
    waits for the first and then gets 409 (or 412 with a stale If-Match)."""
    task = get_task(session, task_id=task_id, lock=True)
    check_version(task, if_match)
    allowed, to = ACTIONS[action]
    if task.status not in allowed:
        raise Conflict(f"a task in status {task.status} does not take the action {action}")
    user = tenant_of(session).user_id
    # Acknowledging takes the task; any other action by an unassigned task's worker too.
    assignee = user if action == "acknowledge" else task.assignee_id or user
    update: dict[str, Any] = {"assignee_id": assignee, **(values or {})}
    if to:
        update["status"] = to
    if to == "done":
        update |= {"completed_by_user_id": user, "completed_at": datetime.now(UTC)}
    return change(session, task, update)


def assign_task(session: Session, *, task_id: uuid.UUID, assignee_id: uuid.UUID) -> PmTask:
    task = get_task(session, task_id=task_id, lock=True)
    require(session, User, assignee_id, field="assignee_id")
    return change(session, task, {"assignee_id": assignee_id})
