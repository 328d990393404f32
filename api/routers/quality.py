"""Quality: NCRs (create, assign, move along the lifecycle, resolve) and inspection logs."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, status
from fastapi.responses import Response

from api import roles
from api.deps import IfMatch, PageDep, SessionDep, requires
from api.repositories import quality
from api.routers import PREFIX
from api.schemas.common import AssigneeIn, PageOf, page_response
from api.schemas.quality import (
    InspectionIn,
    InspectionOut,
    NcrIn,
    NcrOut,
    NcrResolve,
    NcrTransition,
)

router = APIRouter(prefix=PREFIX, tags=["Quality"])

NcrStatus = Literal["open", "investigating", "contained", "resolved", "closed", "cancelled"]


@router.get("/ncrs", response_model=PageOf[NcrOut])
def list_ncrs(session: SessionDep, page: PageDep, status: NcrStatus | None = None,
              severity: Literal["minor", "major", "critical"] | None = None,
              work_order_id: uuid.UUID | None = None, assignee_id: uuid.UUID | None = None,
              sort: Literal["created_at", "-created_at", "number", "-number", "updated_at",
                            "-updated_at"] = "-created_at") -> Response:
    items, cursor = quality.list_ncrs(session, page=page, sort=sort, status=status,
                                      severity=severity, work_order_id=work_order_id,
                                      assignee_id=assignee_id)
    return page_response(NcrOut, items, cursor)


@router.post("/ncrs", response_model=NcrOut, status_code=status.HTTP_201_CREATED,
             **requires(*roles.NCR_RAISERS))
def create_ncr(session: SessionDep, body: NcrIn) -> object:
    """Raise an NCR against a work order and/or material."""
    return quality.create_ncr(session, values=body.model_dump())


@router.get("/ncrs/{ncr_id}", response_model=NcrOut)
def get_ncr(session: SessionDep, ncr_id: uuid.UUID) -> object:
    return quality.get_ncr(session, ncr_id=ncr_id)


@router.post("/ncrs/{ncr_id}/assign", response_model=NcrOut, **requires(*roles.QUALITY))
def assign_ncr(session: SessionDep, ncr_id: uuid.UUID, body: AssigneeIn,
               if_match: IfMatch = None) -> object:
    return quality.assign_ncr(session, ncr_id=ncr_id, assignee_id=body.assignee_id,
                              if_match=if_match)


@router.post("/ncrs/{ncr_id}/status", response_model=NcrOut, **requires(*roles.QUALITY))
def move_ncr(session: SessionDep, ncr_id: uuid.UUID, body: NcrTransition,
             if_match: IfMatch = None) -> object:
    """investigating, contained, closed (after resolve) or cancelled (before resolve)."""
    return quality.move_ncr(session, ncr_id=ncr_id, status=body.status, if_match=if_match)


@router.post("/ncrs/{ncr_id}/resolve", response_model=NcrOut, **requires(*roles.QUALITY))
def resolve_ncr(session: SessionDep, ncr_id: uuid.UUID, body: NcrResolve,
                if_match: IfMatch = None) -> object:
    """Resolve with a disposition; the caller is recorded as the resolver."""
    return quality.resolve_ncr(session, ncr_id=ncr_id, disposition=body.disposition,
                               resolution=body.resolution, if_match=if_match)


@router.get("/inspections", response_model=PageOf[InspectionOut])
def list_inspections(session: SessionDep, page: PageDep, work_order_id: uuid.UUID | None = None,
                     result: Literal["pass", "fail", "conditional"] | None = None,
                     sort: Literal["inspected_at", "-inspected_at", "created_at",
                                   "-created_at"] = "-inspected_at") -> Response:
    items, cursor = quality.list_inspections(session, page=page, sort=sort,
                                             work_order_id=work_order_id, result=result)
    return page_response(InspectionOut, items, cursor)


@router.post("/inspections", response_model=InspectionOut, status_code=status.HTTP_201_CREATED,
             **requires(*roles.INSPECTORS))
def log_inspection(session: SessionDep, body: InspectionIn) -> object:
    """Log an inspection; the caller is the inspector."""
    return quality.log_inspection(session, values=body.model_dump())


@router.get("/inspections/{inspection_id}", response_model=InspectionOut)
def get_inspection(session: SessionDep, inspection_id: uuid.UUID) -> object:
    return quality.get_inspection(session, inspection_id=inspection_id)
