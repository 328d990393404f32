"""Preventive-maintenance schedules and tasks (the columns of sql/0003)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import TenantOut, example


class ScheduleOut(TenantOut):
    machine_id: uuid.UUID
    name: str
    instructions: str
    trigger_kind: str
    interval_value: Decimal
    lead_value: Decimal
    schedule_mode: str
    counter_tag: str | None
    anchor_at: datetime
    anchor_meter: float
    is_active: bool


class ScheduleIn(BaseModel):
    model_config = example(machine_id="00000000-0000-0000-0000-000000000001",
                           name="Lubricate slide", trigger_kind="cycles", interval_value="10000",
                           lead_value="500", counter_tag="cycles")

    machine_id: uuid.UUID
    name: str = Field(min_length=1, max_length=200)
    instructions: str = Field(default="", max_length=8000)
    trigger_kind: Literal["calendar", "runtime_hours", "cycles"]
    interval_value: Decimal = Field(gt=0, max_digits=14, decimal_places=3)
    lead_value: Decimal = Field(default=Decimal(0), ge=0, max_digits=14, decimal_places=3)
    schedule_mode: Literal["fixed", "floating"] = "fixed"
    counter_tag: str | None = Field(default=None, min_length=1, max_length=64)
    anchor_at: datetime | None = None
    anchor_meter: float = Field(default=0, allow_inf_nan=False)


class ScheduleUpdate(BaseModel):
    model_config = example(instructions="Grease points 1-6; check the level gauge.")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    instructions: str | None = Field(default=None, max_length=8000)
    interval_value: Decimal | None = Field(default=None, gt=0, max_digits=14, decimal_places=3)
    lead_value: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=3)
    schedule_mode: Literal["fixed", "floating"] | None = None
    is_active: bool | None = None


class TaskOut(TenantOut):
    schedule_id: uuid.UUID
    machine_id: uuid.UUID
    occurrence: int
    due_at: datetime | None
    due_meter: float | None
    status: str
    assignee_id: uuid.UUID | None
    completed_by_user_id: uuid.UUID | None
    completed_at: datetime | None
    meter_at_completion: float | None
    notes: str


class TaskComplete(BaseModel):
    model_config = example(meter_reading=10342.0, notes="greased, level ok")

    meter_reading: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    notes: str = Field(default="", max_length=8000)


class TaskSkip(BaseModel):
    model_config = example(reason="machine decommissioned this week")

    reason: str = Field(min_length=1, max_length=2000)
