"""Machines: the registry's machines, their state, timeline, time in state and downtime."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api import roles
from api.deps import PageDep, SessionDep, requires
from api.repositories import downtime, machines, production
from api.routers import PREFIX
from api.schemas.common import PageOf, page_response
from api.schemas.machines import (
    CurrentState,
    DowntimeOut,
    MachineOut,
    MachineUpdate,
    ReasonIn,
    Segment,
    SplitIn,
    TimeInState,
)
from api.schemas.production import AssignmentOut

router = APIRouter(prefix=PREFIX, tags=["Machines"])

Start = Annotated[datetime, Query(description="range start (RFC 3339, with offset)")]
End = Annotated[datetime, Query(description="range end, exclusive")]


@router.get("/machines", response_model=PageOf[MachineOut])
def list_machines(session: SessionDep, page: PageDep,
                  sort: Literal["code", "-code", "name", "-name", "created_at",
                                "-created_at"] = "code",
                  plant_id: uuid.UUID | None = None, kind: str | None = None,
                  active: bool | None = None) -> Response:
    items, cursor = machines.list_machines(session, page=page, sort=sort, plant_id=plant_id,
                                           kind=kind, active=active)
    return page_response(MachineOut, items, cursor)


@router.get("/machines/{machine_id}", response_model=MachineOut)
def get_machine(session: SessionDep, machine_id: uuid.UUID) -> object:
    return machines.get_machine(session, machine_id=machine_id)


@router.patch("/machines/{machine_id}", response_model=MachineOut,
              **requires(*roles.MACHINE_EDITORS))
def update_machine(session: SessionDep, machine_id: uuid.UUID, body: MachineUpdate) -> object:
    return machines.update_machine(session, machine_id=machine_id,
                                   values=body.model_dump(exclude_unset=True))


@router.get("/machines/{machine_id}/state", response_model=CurrentState)
def current_state(session: SessionDep, machine_id: uuid.UUID) -> object:
    return machines.current_state(session, machine_id=machine_id)


@router.get("/machines/{machine_id}/timeline", response_model=list[Segment])
def timeline(session: SessionDep, machine_id: uuid.UUID, start: Start, end: End) -> object:
    """States over a range (at most 31 days), one segment per change."""
    return machines.timeline(session, machine_id=machine_id, start=start, end=end)


@router.get("/machines/{machine_id}/time-in-state", response_model=TimeInState)
def time_in_state(session: SessionDep, machine_id: uuid.UUID, start: Start, end: End) -> object:
    """Seconds in each state and availability over whole UTC hours covering the range."""
    return machines.time_in_state(session, machine_id=machine_id, start=start, end=end)


@router.get("/machines/{machine_id}/work-orders", response_model=PageOf[AssignmentOut])
def machine_assignments(session: SessionDep, page: PageDep, machine_id: uuid.UUID) -> Response:
    """The work orders this machine was assigned to, newest first."""
    items, cursor = production.assignments(session, page=page, machine_id=machine_id)
    return page_response(AssignmentOut, items, cursor)


@router.get("/downtime", response_model=PageOf[DowntimeOut])
def list_downtime(session: SessionDep, page: PageDep,
                  machine_id: Annotated[list[uuid.UUID] | None, Query()] = None,
                  start: datetime | None = None, end: datetime | None = None,
                  state: Literal["idle", "starved", "blocked", "setup", "planned_stop",
                                 "fault"] | None = None,
                  category: Literal["planned", "unplanned"] | None = None,
                  reason_code: str | None = None,
                  open_only: Annotated[bool, Query(alias="open")] = False,
                  sort: Literal["started_at", "-started_at", "updated_at",
                                "-updated_at"] = "-started_at") -> Response:
    """Stops overlapping [start, end); `reason_code` matches the edge's or a person's."""
    items, cursor = downtime.list_downtime(
        session, page=page, sort=sort, machine_ids=machine_id or [], start=start, end=end,
        state=state, category=category, reason_code=reason_code, open_only=open_only)
    return page_response(DowntimeOut, items, cursor)


@router.get("/downtime/{event_id}", response_model=DowntimeOut)
def get_downtime(session: SessionDep, event_id: uuid.UUID) -> object:
    return downtime.get_downtime(session, event_id=event_id)


@router.put("/downtime/{event_id}/reason", response_model=DowntimeOut,
            **requires(*roles.DOWNTIME_EDITORS))
def set_reason(session: SessionDep, event_id: uuid.UUID, body: ReasonIn) -> object:
    """Set or correct the reason of the whole stop, with a comment."""
    return downtime.set_reason(session, event_id=event_id, reason_code=body.reason_code,
                               comment=body.comment)


@router.post("/downtime/{event_id}/split", response_model=DowntimeOut,
             **requires(*roles.DOWNTIME_EDITORS))
def split(session: SessionDep, event_id: uuid.UUID, body: SplitIn) -> object:
    """Split the stop at `at`; the part from there on gets its own reason."""
    return downtime.split(session, event_id=event_id, at=body.at, reason_code=body.reason_code,
                          comment=body.comment)
