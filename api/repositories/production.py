"""Work orders and the machines they run on (the WorkOrder-Machine junction)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import Page
from api.pagination import paginate
from api.problems import Conflict
from api.repositories.base import add, change, get_or_404, require
from core.models import Machine, Material, WorkOrder, WorkOrderMachine

WORK_ORDER_SORTS = {"number": WorkOrder.number, "created_at": WorkOrder.created_at}


def list_work_orders(session: Session, *, page: Page, sort: str, status: str | None,
                     material_id: uuid.UUID | None) -> tuple[list[WorkOrder], str | None]:
    stmt = select(WorkOrder)
    if status is not None:
        stmt = stmt.where(WorkOrder.status == status)
    if material_id is not None:
        stmt = stmt.where(WorkOrder.material_id == material_id)
    return paginate(session, stmt, page=page, sort=sort, columns=WORK_ORDER_SORTS,
                    tiebreak=WorkOrder.id)


def get_work_order(session: Session, *, work_order_id: uuid.UUID, lock: bool = False
                   ) -> WorkOrder:
    return get_or_404(session, WorkOrder, work_order_id, what="work order", lock=lock)


def create_work_order(session: Session, *, values: dict[str, Any]) -> WorkOrder:
    require(session, Material, values.get("material_id"), field="material_id")
    plant_id = values.pop("plant_id", None)
    return add(session, WorkOrder(**values), plant_id=plant_id)


def update_work_order(session: Session, *, work_order_id: uuid.UUID,
                      values: dict[str, Any]) -> WorkOrder:
    return change(session, get_work_order(session, work_order_id=work_order_id, lock=True),
                  values)


def assignments(session: Session, *, page: Page, work_order_id: uuid.UUID | None = None,
                machine_id: uuid.UUID | None = None
                ) -> tuple[list[WorkOrderMachine], str | None]:
    """The assignment history of a work order or of a machine, newest first by default."""
    stmt = select(WorkOrderMachine)
    if work_order_id is not None:
        get_work_order(session, work_order_id=work_order_id)
        stmt = stmt.where(WorkOrderMachine.work_order_id == work_order_id)
    if machine_id is not None:
        get_or_404(session, Machine, machine_id, what="machine")
        stmt = stmt.where(WorkOrderMachine.machine_id == machine_id)
    return paginate(session, stmt, page=page, sort="-assigned_at", tiebreak=WorkOrderMachine.id,
                    columns={"assigned_at": WorkOrderMachine.assigned_at})


def assign(session: Session, *, work_order_id: uuid.UUID,
           machine_id: uuid.UUID) -> WorkOrderMachine:
    """Put the machine on the order now; 409 while it is still assigned to it."""
    order = get_work_order(session, work_order_id=work_order_id, lock=True)
    machine = require(session, Machine, machine_id, field="machine_id")
    current = session.scalar(select(WorkOrderMachine.id).where(
        WorkOrderMachine.work_order_id == work_order_id,
        WorkOrderMachine.machine_id == machine_id, WorkOrderMachine.released_at.is_(None)))
    if current is not None:
        raise Conflict(f"machine {machine_id} is already assigned to this work order")
    return add(session, WorkOrderMachine(work_order_id=order.id, machine_id=machine_id),
               plant_id=machine.plant_id or order.plant_id)


def release(session: Session, *, work_order_id: uuid.UUID,
            assignment_id: uuid.UUID) -> WorkOrderMachine:
    row = get_or_404(session, WorkOrderMachine, assignment_id, what="assignment", lock=True)
    if row.work_order_id != work_order_id:
        raise Conflict(f"assignment {assignment_id} belongs to another work order")
    if row.released_at is not None:
        raise Conflict(f"assignment {assignment_id} was already released")
    return change(session, row, {"released_at": datetime.now(UTC)})
