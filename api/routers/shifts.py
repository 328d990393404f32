"""Shifts and handovers (logged, acknowledged, with the shift's stops and open tasks)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, status
from fastapi.responses import Response

from api import roles
from api.deps import PageDep, SessionDep, requires
from api.repositories import shifts
from api.routers import PREFIX
from api.schemas.common import PageOf, page_response
from api.schemas.shifts import (
    HandoverDetail,
    HandoverIn,
    HandoverOut,
    ShiftIn,
    ShiftOut,
    ShiftSummary,
)

router = APIRouter(prefix=PREFIX, tags=["Shifts"])


@router.get("/shifts", response_model=PageOf[ShiftOut])
def list_shifts(session: SessionDep, page: PageDep, start: datetime | None = None,
                end: datetime | None = None,
                sort: Literal["starts_at", "-starts_at", "created_at",
                              "-created_at"] = "-starts_at") -> Response:
    """Shifts overlapping [start, end)."""
    items, cursor = shifts.list_shifts(session, page=page, sort=sort, start=start, end=end)
    return page_response(ShiftOut, items, cursor)


@router.post("/shifts", response_model=ShiftOut, status_code=status.HTTP_201_CREATED,
             **requires(*roles.SHIFT_PLANNERS))
def create_shift(session: SessionDep, body: ShiftIn) -> object:
    return shifts.create_shift(session, values=body.model_dump())


@router.get("/shifts/{shift_id}", response_model=ShiftOut)
def get_shift(session: SessionDep, shift_id: uuid.UUID) -> object:
    return shifts.get_shift(session, shift_id=shift_id)


@router.get("/shifts/{shift_id}/summary", response_model=ShiftSummary)
def shift_summary(session: SessionDep, shift_id: uuid.UUID) -> object:
    """The shift's stops and the maintenance tasks still open: what a handover passes on."""
    return shifts.summary(session, shift_id=shift_id)


@router.post("/shifts/{shift_id}/handovers", response_model=HandoverOut,
             status_code=status.HTTP_201_CREATED, **requires(*roles.SHIFT_STAFF))
def log_handover(session: SessionDep, shift_id: uuid.UUID, body: HandoverIn) -> object:
    """Log the handover of a shift; the caller is recorded as who logged it."""
    return shifts.log_handover(session, shift_id=shift_id, notes=body.notes)


@router.get("/handovers", response_model=PageOf[HandoverOut])
def list_handovers(session: SessionDep, page: PageDep, shift_id: uuid.UUID | None = None,
                   acknowledged: bool | None = None,
                   sort: Literal["logged_at", "-logged_at"] = "-logged_at") -> Response:
    items, cursor = shifts.list_handovers(session, page=page, sort=sort, shift_id=shift_id,
                                          acknowledged=acknowledged)
    return page_response(HandoverOut, items, cursor)


@router.get("/handovers/{handover_id}", response_model=HandoverDetail)
def get_handover(session: SessionDep, handover_id: uuid.UUID) -> object:
    """The handover with its shift's stops and open tasks."""
    handover = shifts.get_handover(session, handover_id=handover_id)
    return HandoverDetail.model_validate(
        {**HandoverOut.model_validate(handover).model_dump(exclude={"version"}),
         "summary": shifts.summary(session, shift_id=handover.shift_id)})


@router.post("/handovers/{handover_id}/acknowledge", response_model=HandoverOut,
             **requires(*roles.SHIFT_STAFF))
def acknowledge_handover(session: SessionDep, handover_id: uuid.UUID) -> object:
    """The incoming shift confirms it read the handover (once; not by its author)."""
    return shifts.acknowledge(session, handover_id=handover_id)
