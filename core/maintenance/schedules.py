"""A schedule as a user writes it (command line, demo file, API), validated with messages that
say what to fix, and turned into the columns of mes.pm_schedules.

    name: Grease rails            # required
    machine: m001 | kind: press   # one of the two (a kind: every such machine of the plant)
    every: 2 weeks | cron: "0 6 * * mon"        # the calendar part (days, weeks, months)
    runtime_hours: 500 | cycles: 10000 (tag: cycles)   # the meter part
    # both parts: combined, whichever comes first
    lead: 2 days / lead_meter: 50, mode: fixed|floating, tolerance_pct: 10, catch_up: one|all,
    checklist: [..], priority: low|normal|high|urgent, estimated_minutes: 30,
    assignee: tech@acme.example, anchor: 2026-01-05T06:00:00+01:00
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import Field, field_validator, model_validator

from core.config_model import StrictModel
from core.maintenance.calendar import Calendar

_EVERY = re.compile(r"^\s*(\d+)\s*(day|week|month)s?\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day|week)s?\s*$")


def parse_every(text: str) -> tuple[int, str]:
    """'2 weeks' -> (2, 'weeks')."""
    m = _EVERY.match(text)
    if not m or int(m[1]) < 1:
        raise ValueError(f"every {text!r}: write N days, N weeks or N months (N >= 1)")
    return int(m[1]), m[2] + "s"


def parse_duration(text: str) -> timedelta:
    """'2 days' -> timedelta(days=2); seconds, minutes, hours, days, weeks."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r}: write N seconds, minutes, hours, days or weeks")
    return timedelta(**{m[2] + "s": float(m[1])})


class ScheduleSpec(StrictModel):
    """One schedule; see the module docstring."""

    name: str = Field(min_length=1, max_length=200)
    machine: str | None = None
    kind: str | None = Field(default=None, min_length=1, max_length=64)
    every: str | None = None
    cron: str | None = None
    runtime_hours: float | None = Field(default=None, gt=0)
    cycles: float | None = Field(default=None, gt=0)
    tag: str = "cycles"
    lead: str | None = None
    lead_meter: float = Field(default=0, ge=0)
    mode: Literal["fixed", "floating"] = "fixed"
    tolerance_pct: float = Field(default=0, ge=0, le=100)
    catch_up: Literal["one", "all"] = "one"
    checklist: list[str] = Field(default_factory=list)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    estimated_minutes: int | None = Field(default=None, gt=0)
    assignee: str | None = None
    anchor: datetime | None = None
    instructions: str = ""

    @field_validator("every")
    @classmethod
    def _every(cls, v: str | None) -> str | None:
        if v is not None:
            parse_every(v)
        return v

    @field_validator("lead")
    @classmethod
    def _lead(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @field_validator("anchor")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("anchor needs a UTC offset, e.g. 2026-01-05T06:00:00+01:00")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleSpec:
        if (self.machine is None) == (self.kind is None):
            raise ValueError("give either machine (one machine) or kind (every machine of "
                             "that kind in the plant)")
        if self.every and self.cron:
            raise ValueError("give either every or cron for the calendar, not both")
        if self.runtime_hours and self.cycles:
            raise ValueError("give either runtime_hours or cycles for the meter, not both")
        calendar, meter = bool(self.every or self.cron), bool(self.runtime_hours or self.cycles)
        if not (calendar or meter):
            raise ValueError("give a trigger: every or cron (calendar), runtime_hours or "
                             "cycles (meter), or one of each (whichever comes first)")
        if self.cron:
            from zoneinfo import ZoneInfo

            try:
                Calendar(ZoneInfo("UTC"), cron=self.cron)
            except ValueError as e:
                raise ValueError(f"cron {self.cron!r}: {e}") from None
        interval = self.runtime_hours or self.cycles
        if interval is not None and self.lead_meter >= interval:
            raise ValueError(f"lead_meter ({self.lead_meter}) must be below the interval "
                             f"({interval})")
        if self.lead and not calendar:
            raise ValueError("lead is a time: it needs a calendar (every or cron); use "
                             "lead_meter for hours or cycles")
        return self

    def trigger_kind(self) -> str:
        """calendar, runtime_hours, cycles or combined."""
        meter = "runtime_hours" if self.runtime_hours else "cycles" if self.cycles else None
        if self.every or self.cron:
            return "combined" if meter else "calendar"
        assert meter is not None
        return meter

    def columns(self) -> dict[str, Any]:
        """The pm_schedules columns (without tenant, machine id and assignee id)."""
        kind = self.trigger_kind()
        meter = "runtime_hours" if self.runtime_hours else "cycles" if self.cycles else None
        every = parse_every(self.every) if self.every else (None, None)
        cols: dict[str, Any] = {
            "name": self.name, "instructions": self.instructions, "trigger_kind": kind,
            "machine_kind": self.kind, "calendar_every": every[0], "calendar_unit": every[1],
            "cron": self.cron, "interval_value": self.runtime_hours or self.cycles,
            "lead_value": self.lead_meter,
            "lead_time": parse_duration(self.lead) if self.lead else timedelta(0),
            "meter_kind": meter if kind == "combined" else None,
            "counter_tag": self.tag if meter == "cycles" else None,
            "schedule_mode": self.mode, "tolerance_pct": self.tolerance_pct,
            "catch_up": self.catch_up, "checklist": self.checklist, "priority": self.priority,
            "estimated_minutes": self.estimated_minutes}
        if self.anchor is not None:
            cols["anchor_at"] = self.anchor
        return cols


class ScheduleRefused(ValueError):
    """A schedule or rule that names a machine or assignee the plant does not have."""


def insert_row(conn: psycopg.Connection, table: str, cols: dict[str, Any],
               organization_id: uuid.UUID, plant_id: uuid.UUID | None,
               machine: str | None = None, assignee: str | None = None) -> uuid.UUID:
    """Insert a schedule's or rule's columns into mes.`table` (inside the caller's tenant
    transaction), with the ids of the `machine` code (in the plant) and the `assignee` e-mail;
    returns the row's id."""
    cols = dict(cols)
    if machine is not None:
        row = conn.execute("SELECT id FROM mes.machines WHERE code = %s AND plant_id = %s",
                           (machine, plant_id)).fetchone()
        if row is None:
            raise ScheduleRefused(f"no machine {machine!r} in this plant")
        cols["machine_id"] = row[0]
    if assignee is not None:
        row = conn.execute("SELECT id FROM mes.users WHERE email = %s", (assignee,)
                           ).fetchone()
        if row is None:
            raise ScheduleRefused(f"no user {assignee!r} in this plant")
        cols["default_assignee_id"] = row[0]
    cols.update(organization_id=organization_id, plant_id=plant_id,
                checklist=Jsonb(cols.get("checklist", [])))
    row = conn.execute(
        f"INSERT INTO mes.{table} ({', '.join(cols)}) "
        f"VALUES ({', '.join(['%s'] * len(cols))}) RETURNING id", list(cols.values())
    ).fetchone()
    assert row is not None
    return row[0]


def insert_schedule(conn: psycopg.Connection, spec: ScheduleSpec, organization_id: uuid.UUID,
                    plant_id: uuid.UUID) -> uuid.UUID:
    """Insert `spec` (inside the caller's tenant transaction); returns the schedule's id."""
    return insert_row(conn, "pm_schedules", spec.columns(), organization_id, plant_id,
                      spec.machine, spec.assignee)
