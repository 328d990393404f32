"""Preventive-maintenance schedules and tasks (the columns of sql/0003 and sql/0011); a new
schedule is the engine's ScheduleSpec, validated by it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas.common import TenantOut, example
from core.maintenance.schedules import ScheduleSpec


class ScheduleOut(TenantOut):
    """A schedule as stored (sql/0011): what a ScheduleSpec became."""

    machine_id: uuid.UUID | None
    machine_kind: str | None
    name: str
    instructions: str
    trigger_kind: str
    calendar_every: int | None
    calendar_unit: str | None
    cron: str | None
    interval_value: Decimal | None
    meter_kind: str | None
    counter_tag: str | None
    lead_value: Decimal
    lead_time: timedelta
    schedule_mode: str
    tolerance_pct: Decimal
    catch_up: str
    checklist: list[Any]
    priority: str
    estimated_minutes: int | None
    default_assignee_id: uuid.UUID | None
    anchor_at: datetime
    anchor_meter: float
    is_active: bool


class ScheduleIn(ScheduleSpec):
    """A schedule as a user writes it (core.maintenance.schedules.ScheduleSpec: machine code
    or kind, every/cron and/or runtime_hours/cycles, lead, mode, tolerance, catch-up,
    checklist, priority, estimated minutes, assignee e-mail), in `plant_id` (default: the
    caller's plant)."""

    model_config = example(machine="m001", name="Grease rails", every="2 weeks",
                           lead="2 days", mode="floating", checklist=["grease rails"])

    plant_id: uuid.UUID | None = None


class ScheduleUpdate(BaseModel):
    """What may change without re-deciding the trigger (a new trigger is a new schedule)."""

    model_config = example(instructions="Grease points 1-6; check the level gauge.")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    instructions: str | None = Field(default=None, max_length=8000)
    interval_value: Decimal | None = Field(default=None, gt=0, max_digits=14, decimal_places=3)
    lead_value: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=3)
    schedule_mode: Literal["fixed", "floating"] | None = None
    tolerance_pct: float | None = Field(default=None, ge=0, le=100)
    catch_up: Literal["one", "all"] | None = None
    checklist: list[str] | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    estimated_minutes: int | None = Field(default=None, gt=0)
    is_active: bool | None = None


class TaskOut(TenantOut):
    schedule_id: uuid.UUID | None
    machine_id: uuid.UUID
    task_kind: str
    title: str
    occurrence: int
    due_at: datetime | None
    due_meter: float | None
    status: str
    assignee_id: uuid.UUID | None
    completed_by_user_id: uuid.UUID | None
    completed_at: datetime | None
    meter_at_completion: float | None
    notes: str
    priority: str
    checklist: list[Any]
    estimated_minutes: int | None
    acknowledged_by_user_id: uuid.UUID | None
    acknowledged_at: datetime | None
    started_by_user_id: uuid.UUID | None
    started_at: datetime | None
    skipped_by_user_id: uuid.UUID | None
    skipped_at: datetime | None
    skip_reason: str | None


class TaskComplete(BaseModel):
    model_config = example(meter_reading=10342.0, notes="greased, level ok")

    meter_reading: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    notes: str = Field(default="", max_length=8000)


class TaskSkip(BaseModel):
    model_config = example(reason="machine decommissioned this week")

    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")


class ChecklistTick(BaseModel):
    model_config = example(index=0, done=True)

    index: int = Field(ge=0)
    done: bool = True
