"""Shifts and the handover between them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import TenantOut, example
from api.schemas.machines import DowntimeOut
from api.schemas.maintenance import TaskOut


class ShiftOut(TenantOut):
    name: str
    starts_at: datetime
    ends_at: datetime


class ShiftIn(BaseModel):
    model_config = example(name="Early", starts_at="2026-01-05T06:00:00Z",
                           ends_at="2026-01-05T14:00:00Z")

    name: str = Field(min_length=1, max_length=100)
    starts_at: datetime
    ends_at: datetime
    plant_id: uuid.UUID | None = None


class HandoverOut(TenantOut):
    shift_id: uuid.UUID
    logged_by_user_id: uuid.UUID
    logged_at: datetime
    notes: str
    acknowledged_by_user_id: uuid.UUID | None
    acknowledged_at: datetime | None


class HandoverIn(BaseModel):
    model_config = example(notes="Press 2 runs slow after the die change; watch the feeder.")

    notes: str = Field(default="", max_length=8000)


class ShiftSummary(BaseModel):
    """What a handover passes on: the shift's stops and the maintenance tasks still open."""

    shift: ShiftOut
    stops: list[DowntimeOut]
    open_tasks: list[TaskOut]


class HandoverDetail(HandoverOut):
    summary: ShiftSummary
