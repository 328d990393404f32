"""Work orders and their machine assignments (the WorkOrder-Machine junction)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import TenantOut, example

WorkOrderStatus = Literal["planned", "released", "in_progress", "completed", "closed",
                          "cancelled"]


class WorkOrderOut(TenantOut):
    number: str
    material_id: uuid.UUID | None
    quantity: Decimal
    status: str
    planned_start: datetime | None
    planned_end: datetime | None
    actual_start: datetime | None
    actual_end: datetime | None


class WorkOrderIn(BaseModel):
    model_config = example(number="WO-1001", quantity="500", planned_start="2026-01-05T06:00:00Z",
                           planned_end="2026-01-05T14:00:00Z")

    number: str = Field(min_length=1, max_length=64)
    plant_id: uuid.UUID | None = Field(
        default=None, description="default: the caller's plant (organization-wide if none)")
    material_id: uuid.UUID | None = None
    quantity: Decimal = Field(default=Decimal(0), ge=0, max_digits=14, decimal_places=3)
    planned_start: datetime | None = None
    planned_end: datetime | None = None


class WorkOrderUpdate(BaseModel):
    model_config = example(status="in_progress", actual_start="2026-01-05T06:10:00Z")

    status: WorkOrderStatus | None = None
    quantity: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=3)
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    actual_start: datetime | None = None
    actual_end: datetime | None = None


class AssignmentOut(TenantOut):
    work_order_id: uuid.UUID
    machine_id: uuid.UUID
    assigned_at: datetime
    released_at: datetime | None


class AssignIn(BaseModel):
    model_config = example(machine_id="00000000-0000-0000-0000-000000000001")

    machine_id: uuid.UUID
