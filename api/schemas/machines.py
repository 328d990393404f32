"""Machines, their states, time in state, downtime and its reasons."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import Out, TenantOut, example

# Reason codes as the wire format allows them: printable, bounded, no quotes.
REASON_PATTERN = r"^[^\x00-\x1f\x7f\"']{1,64}$"


class MachineOut(TenantOut):
    code: str
    name: str
    kind: str | None
    tags: dict[str, Any]
    is_active: bool


class MachineUpdate(BaseModel):
    model_config = example(name="Press 1 (rebuilt)", tags={"line": "l2"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = Field(default=None, max_length=64)
    tags: dict[str, str] | None = None
    is_active: bool | None = None


class CurrentState(BaseModel):
    """The latest state a machine reported, and since when it has been in it."""

    machine_id: uuid.UUID
    state: str
    reason_code: str | None
    since: datetime
    last_seen: datetime


class Segment(BaseModel):
    """A stretch of one state; `end` None: still in it."""

    state: str
    start: datetime
    end: datetime | None
    reason_code: str | None


class TimeInState(BaseModel):
    """Seconds in each state over whole UTC hours from `start` to `end`. `availability` is
    running time over planned production time (every known state but planned_stop); offline
    and hours without data are unknown time and count in neither."""

    machine_id: uuid.UUID
    start: datetime
    end: datetime
    seconds: dict[str, float]
    planned_production_seconds: float
    availability: float | None


class ReasonSegment(Out):
    """The reason people gave for the part of a stop from `start` on."""

    start: datetime = Field(validation_alias="segment_start")
    reason_code: str | None
    comment: str
    updated_by: uuid.UUID | None
    updated_at: datetime


class DowntimeOut(BaseModel):
    """A stop as the edge reported it, with the reasons people gave (`segments`, by start;
    more than one when it was split). `reason_code` is the effective reason of its start."""

    event_id: uuid.UUID
    machine_id: uuid.UUID
    plant_id: uuid.UUID | None
    started_at: datetime
    ended_at: datetime | None
    state: str
    category: str
    micro_stop: bool | None
    edge_reason_code: str | None
    reason_code: str | None
    segments: list[ReasonSegment]


class ReasonIn(BaseModel):
    model_config = example(reason_code="tool-change", comment="die swapped early")

    reason_code: str = Field(pattern=REASON_PATTERN)
    comment: str = Field(default="", max_length=2000)


class SplitIn(BaseModel):
    model_config = example(at="2026-01-05T08:03:00Z", reason_code="waiting-material",
                           comment="tool change done, no coils")

    at: datetime
    reason_code: str | None = Field(default=None, pattern=REASON_PATTERN)
    comment: str = Field(default="", max_length=2000)
