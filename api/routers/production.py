"""Work orders and their machine assignments (assign, release, history)."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, status
from fastapi.responses import Response

from api import roles
from api.deps import PageDep, SessionDep, requires
from api.repositories import production
from api.routers import PREFIX
from api.schemas.common import PageOf, page_response
from api.schemas.production import (
    AssignIn,
    AssignmentOut,
    WorkOrderIn,
    WorkOrderOut,
    WorkOrderStatus,
    WorkOrderUpdate,
)

router = APIRouter(prefix=PREFIX, tags=["Machines"])


@router.get("/work-orders", response_model=PageOf[WorkOrderOut])
def list_work_orders(session: SessionDep, page: PageDep,
                     status: WorkOrderStatus | None = None, material_id: uuid.UUID | None = None,
                     sort: Literal["number", "-number", "created_at",
                                   "-created_at"] = "-created_at") -> Response:
    items, cursor = production.list_work_orders(session, page=page, sort=sort, status=status,
                                                material_id=material_id)
    return page_response(WorkOrderOut, items, cursor)


@router.post("/work-orders", response_model=WorkOrderOut, status_code=status.HTTP_201_CREATED,
             **requires(*roles.PRODUCTION_EDITORS))
def create_work_order(session: SessionDep, body: WorkOrderIn) -> object:
    return production.create_work_order(session, values=body.model_dump())


@router.get("/work-orders/{work_order_id}", response_model=WorkOrderOut)
def get_work_order(session: SessionDep, work_order_id: uuid.UUID) -> object:
    return production.get_work_order(session, work_order_id=work_order_id)


@router.patch("/work-orders/{work_order_id}", response_model=WorkOrderOut,
              **requires(*roles.PRODUCTION_EDITORS))
def update_work_order(session: SessionDep, work_order_id: uuid.UUID,
                      body: WorkOrderUpdate) -> object:
    return production.update_work_order(session, work_order_id=work_order_id,
                                        values=body.model_dump(exclude_unset=True))


@router.get("/work-orders/{work_order_id}/machines", response_model=PageOf[AssignmentOut])
def list_assignments(session: SessionDep, page: PageDep, work_order_id: uuid.UUID) -> Response:
    """The machines assigned to the order, current and released, newest first."""
    items, cursor = production.assignments(session, page=page, work_order_id=work_order_id)
    return page_response(AssignmentOut, items, cursor)


@router.post("/work-orders/{work_order_id}/machines", response_model=AssignmentOut,
             status_code=status.HTTP_201_CREATED, **requires(*roles.PRODUCTION_EDITORS))
def assign_machine(session: SessionDep, work_order_id: uuid.UUID, body: AssignIn) -> object:
    return production.assign(session, work_order_id=work_order_id, machine_id=body.machine_id)


@router.post("/work-orders/{work_order_id}/machines/{assignment_id}/release",
             response_model=AssignmentOut, **requires(*roles.PRODUCTION_EDITORS))
def release_machine(session: SessionDep, work_order_id: uuid.UUID,
                    assignment_id: uuid.UUID) -> object:
    return production.release(session, work_order_id=work_order_id, assignment_id=assignment_id)
