"""Non-conformance reports and inspection logs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import TenantOut, example

Disposition = Literal["use_as_is", "rework", "repair", "scrap", "return_to_supplier"]


class NcrOut(TenantOut):
    number: str
    work_order_id: uuid.UUID | None
    material_id: uuid.UUID | None
    title: str
    description: str
    severity: str
    status: str
    assignee_id: uuid.UUID | None
    resolved_by_user_id: uuid.UUID | None
    resolved_at: datetime | None
    disposition: str | None
    resolution: str


class NcrIn(BaseModel):
    model_config = example(number="NCR-2026-0042", title="Burr on edge", severity="major",
                           description="found at final inspection, 12 parts")

    number: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    severity: Literal["minor", "major", "critical"] = "minor"
    plant_id: uuid.UUID | None = Field(
        default=None, description="default: the work order's plant, else the caller's")
    work_order_id: uuid.UUID | None = None
    material_id: uuid.UUID | None = None


class NcrTransition(BaseModel):
    """Move along the lifecycle: open -> investigating -> contained -> (resolve) -> closed;
    cancelled from any state before resolved."""

    model_config = example(status="investigating")

    status: Literal["investigating", "contained", "closed", "cancelled"]


class NcrResolve(BaseModel):
    model_config = example(disposition="rework", resolution="deburred and re-inspected")

    disposition: Disposition
    resolution: str = Field(default="", max_length=4000)


class InspectionOut(TenantOut):
    work_order_id: uuid.UUID | None
    material_id: uuid.UUID | None
    inspector_id: uuid.UUID | None
    inspected_at: datetime
    characteristic: str
    result: str
    measured_value: float | None
    notes: str


class InspectionIn(BaseModel):
    model_config = example(characteristic="edge burr height (mm)", result="fail",
                           measured_value=0.32, notes="limit 0.2")

    result: Literal["pass", "fail", "conditional"]
    characteristic: str = Field(default="", max_length=200)
    measured_value: float | None = Field(default=None, allow_inf_nan=False)
    notes: str = Field(default="", max_length=4000)
    inspected_at: datetime | None = None
    plant_id: uuid.UUID | None = None
    work_order_id: uuid.UUID | None = None
    material_id: uuid.UUID | None = None
