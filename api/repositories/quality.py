"""Quality: NCRs through their lifecycle, and inspection logs.

Lifecycle: open -> investigating -> contained -> resolved -> closed, or cancelled from any
state before resolved. Resolving names the resolver (the caller), the time and the material's
disposition. Every transition locks the report, so two people acting at once queue and the
second sees the first's result (a 409 if that made its step impossible).
"""

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
from core.models import InspectionLog, Material, Ncr, User, WorkOrder

# Which status each step may start from.
STEPS_FROM: dict[str, set[str]] = {
    "investigating": {"open"},
    "contained": {"open", "investigating"},
    "resolved": {"open", "investigating", "contained"},
    "closed": {"resolved"},
    "cancelled": {"open", "investigating", "contained"},
}


def list_ncrs(session: Session, *, page: Page, sort: str, status: str | None,
              severity: str | None, work_order_id: uuid.UUID | None,
              assignee_id: uuid.UUID | None) -> tuple[list[Ncr], str | None]:
    stmt = select(Ncr)
    for column, value in ((Ncr.status, status), (Ncr.severity, severity),
                          (Ncr.work_order_id, work_order_id), (Ncr.assignee_id, assignee_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    return paginate(session, stmt, page=page, sort=sort, tiebreak=Ncr.id,
                    columns={"created_at": Ncr.created_at, "number": Ncr.number,
                             "updated_at": Ncr.updated_at})


def get_ncr(session: Session, *, ncr_id: uuid.UUID, lock: bool = False) -> Ncr:
    return get_or_404(session, Ncr, ncr_id, what="NCR", lock=lock)


def _against_order(session: Session, values: dict[str, Any]) -> uuid.UUID | None:
    """Check the work order and material `values` name; the plant the row goes into: the one
    given, else the work order's. A missing material is the work order's."""
    order = require(session, WorkOrder, values.get("work_order_id"), field="work_order_id")
    require(session, Material, values.get("material_id"), field="material_id")
    if order is not None and values.get("material_id") is None:
        values["material_id"] = order.material_id
    return values.pop("plant_id", None) or (order.plant_id if order else None)


def create_ncr(session: Session, *, values: dict[str, Any]) -> Ncr:
    """A report against a work order and/or material."""
    plant_id = _against_order(session, values)
    return add(session, Ncr(**values), plant_id=plant_id)


def _step(session: Session, ncr_id: uuid.UUID, to: str, if_match: str | None) -> Ncr:
    ncr = get_ncr(session, ncr_id=ncr_id, lock=True)
    check_version(ncr, if_match)
    if ncr.status not in STEPS_FROM[to]:
        raise Conflict(f"an NCR in status {ncr.status} cannot become {to}")
    return ncr


def assign_ncr(session: Session, *, ncr_id: uuid.UUID, assignee_id: uuid.UUID,
               if_match: str | None) -> Ncr:
    ncr = get_ncr(session, ncr_id=ncr_id, lock=True)
    check_version(ncr, if_match)
    if ncr.status in ("resolved", "closed", "cancelled"):
        raise Conflict(f"an NCR in status {ncr.status} is no longer assigned")
    require(session, User, assignee_id, field="assignee_id")
    return change(session, ncr, {"assignee_id": assignee_id})


def move_ncr(session: Session, *, ncr_id: uuid.UUID, status: str,
             if_match: str | None) -> Ncr:
    return change(session, _step(session, ncr_id, status, if_match), {"status": status})


def resolve_ncr(session: Session, *, ncr_id: uuid.UUID, disposition: str, resolution: str,
                if_match: str | None) -> Ncr:
    ncr = _step(session, ncr_id, "resolved", if_match)
    return change(session, ncr, {
        "status": "resolved", "disposition": disposition, "resolution": resolution,
        "resolved_by_user_id": tenant_of(session).user_id, "resolved_at": datetime.now(UTC)})


def list_inspections(session: Session, *, page: Page, sort: str,
                     work_order_id: uuid.UUID | None, result: str | None
                     ) -> tuple[list[InspectionLog], str | None]:
    stmt = select(InspectionLog)
    if work_order_id is not None:
        stmt = stmt.where(InspectionLog.work_order_id == work_order_id)
    if result is not None:
        stmt = stmt.where(InspectionLog.result == result)
    return paginate(session, stmt, page=page, sort=sort, tiebreak=InspectionLog.id,
                    columns={"inspected_at": InspectionLog.inspected_at,
                             "created_at": InspectionLog.created_at})


def get_inspection(session: Session, *, inspection_id: uuid.UUID) -> InspectionLog:
    return get_or_404(session, InspectionLog, inspection_id, what="inspection log")


def log_inspection(session: Session, *, values: dict[str, Any]) -> InspectionLog:
    """An inspection by the caller."""
    plant_id = _against_order(session, values)
    if values.get("inspected_at") is None:
        values.pop("inspected_at", None)
    log = InspectionLog(inspector_id=tenant_of(session).user_id, **values)
    return add(session, log, plant_id=plant_id)
