"""Maintenance: PM schedules and the tasks the maintenance engine raises from them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from api import roles
from api.deps import IfMatch, PageDep, SessionDep, requires
from api.repositories import maintenance
from api.routers import PREFIX
from api.schemas.common import AssigneeIn, PageOf, page_response
from api.schemas.maintenance import (
    ChecklistTick,
    ScheduleIn,
    ScheduleOut,
    ScheduleUpdate,
    TaskComplete,
    TaskOut,
    TaskSkip,
)
from core.maintenance.schedules import ScheduleSpec

router = APIRouter(prefix=f"{PREFIX}/pm", tags=["Maintenance"])

TaskStatus = Literal["open", "acknowledged", "in_progress", "done", "skipped", "cancelled"]


@router.get("/schedules", response_model=PageOf[ScheduleOut])
def list_schedules(session: SessionDep, page: PageDep, machine_id: uuid.UUID | None = None,
                   active: bool | None = None,
                   sort: Literal["name", "-name", "created_at", "-created_at"] = "name"
                   ) -> Response:
    items, cursor = maintenance.list_schedules(session, page=page, sort=sort,
                                               machine_id=machine_id, active=active)
    return page_response(ScheduleOut, items, cursor)


@router.post("/schedules", response_model=ScheduleOut, status_code=status.HTTP_201_CREATED,
             **requires(*roles.MAINTENANCE_PLANNERS))
def create_schedule(session: SessionDep, body: ScheduleIn) -> object:
    """A schedule as the engine's ScheduleSpec (docs/maintenance.md): 422 names what to fix."""
    spec = ScheduleSpec(**body.model_dump(exclude={"plant_id"}))
    return maintenance.create_schedule(session, spec=spec, plant_id=body.plant_id)


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut)
def get_schedule(session: SessionDep, schedule_id: uuid.UUID) -> object:
    return maintenance.get_schedule(session, schedule_id=schedule_id)


@router.patch("/schedules/{schedule_id}", response_model=ScheduleOut,
              **requires(*roles.MAINTENANCE_PLANNERS))
def update_schedule(session: SessionDep, schedule_id: uuid.UUID, body: ScheduleUpdate,
                    if_match: IfMatch = None) -> object:
    return maintenance.update_schedule(session, schedule_id=schedule_id,
                                       values=body.model_dump(exclude_unset=True),
                                       if_match=if_match)


@router.delete("/schedules/{schedule_id}", response_model=ScheduleOut,
               **requires(*roles.MAINTENANCE_PLANNERS))
def deactivate_schedule(session: SessionDep, schedule_id: uuid.UUID) -> object:
    """Deactivate: a schedule is never deleted (its tasks keep pointing at it)."""
    return maintenance.deactivate_schedule(session, schedule_id=schedule_id)


@router.get("/tasks", response_model=PageOf[TaskOut])
def list_tasks(session: SessionDep, page: PageDep,
               status: Annotated[list[TaskStatus] | None, Query()] = None,
               machine_id: uuid.UUID | None = None, assignee_id: uuid.UUID | None = None,
               due_from: datetime | None = None, due_to: datetime | None = None,
               sort: Literal["created_at", "-created_at", "updated_at",
                             "-updated_at"] = "created_at") -> Response:
    """Tasks by status (repeatable), machine, assignee and due range [due_from, due_to)."""
    items, cursor = maintenance.list_tasks(
        session, page=page, sort=sort, status=list(status or []), machine_id=machine_id,
        assignee_id=assignee_id, due_from=due_from, due_to=due_to)
    return page_response(TaskOut, items, cursor)


@router.get("/tasks/{task_id}", response_model=TaskOut)
def get_task(session: SessionDep, task_id: uuid.UUID) -> object:
    return maintenance.get_task(session, task_id=task_id)


@router.post("/tasks/{task_id}/assign", response_model=TaskOut,
             **requires(*roles.MAINTENANCE_PLANNERS))
def assign_task(session: SessionDep, task_id: uuid.UUID, body: AssigneeIn) -> object:
    return maintenance.assign_task(session, task_id=task_id, assignee_id=body.assignee_id)


@router.post("/tasks/{task_id}/acknowledge", response_model=TaskOut,
             **requires(*roles.TECHNICIANS))
def acknowledge_task(session: SessionDep, task_id: uuid.UUID, if_match: IfMatch = None) -> object:
    """Take the task (open -> acknowledged): the caller becomes its assignee."""
    return maintenance.act(session, task_id=task_id, action="acknowledge", if_match=if_match)


@router.post("/tasks/{task_id}/start", response_model=TaskOut, **requires(*roles.TECHNICIANS))
def start_task(session: SessionDep, task_id: uuid.UUID, if_match: IfMatch = None) -> object:
    return maintenance.act(session, task_id=task_id, action="start", if_match=if_match)


@router.post("/tasks/{task_id}/complete", response_model=TaskOut,
             **requires(*roles.TECHNICIANS))
def complete_task(session: SessionDep, task_id: uuid.UUID, body: TaskComplete,
                  if_match: IfMatch = None) -> object:
    """Complete with the meter reading; records who completed it and when. A second
    completion of the same task gets 409."""
    return maintenance.act(session, task_id=task_id, action="complete", if_match=if_match,
                           meter=body.meter_reading, notes=body.notes)


@router.post("/tasks/{task_id}/skip", response_model=TaskOut, **requires(*roles.TECHNICIANS))
def skip_task(session: SessionDep, task_id: uuid.UUID, body: TaskSkip,
              if_match: IfMatch = None) -> object:
    """Skip with a reason (recorded as the task's skip_reason)."""
    return maintenance.act(session, task_id=task_id, action="skip", if_match=if_match,
                           reason=body.reason)


@router.post("/tasks/{task_id}/checklist", response_model=TaskOut,
             **requires(*roles.TECHNICIANS))
def tick_checklist_item(session: SessionDep, task_id: uuid.UUID, body: ChecklistTick,
                        if_match: IfMatch = None) -> object:
    """Tick (done: true) or untick checklist item `index` (from 0) of an open task."""
    return maintenance.tick_item(session, task_id=task_id, index=body.index, done=body.done,
                                 if_match=if_match)
