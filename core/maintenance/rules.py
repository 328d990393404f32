"""Condition rules and corrective rules as a user writes them (command line, demo file),
validated with messages that name the field to fix, and turned into the columns of
mes.pm_condition_rules and mes.pm_corrective_rules (sql/0011).

A condition rule, on telemetry or on state rows (one inspection task per episode):

    name: Spindle hot                 # required
    machine: m001 | kind: press       # one of the two
    tag: spindle_temp, above: 60 | below: 5, lasting: 5 minutes, clear: 55
    state: fault, reason: F12, count: 5, within: 8 hours, clear_count: 3
    checklist, priority (default high), estimated_minutes, assignee, instructions, active_from

A corrective rule (one corrective task per downtime event that matches):

    name: Long fault                  # required
    states: [fault], min_duration: 10 minutes, reasons: [F12, F40]   # a duration or reasons
    checklist, priority (default high), assignee, active_from
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import psycopg
from pydantic import Field, field_validator, model_validator

from core.config_model import StrictModel
from core.maintenance.schedules import insert_row, parse_duration

STATES = ("running", "idle", "starved", "blocked", "setup", "planned_stop", "fault", "offline")
# The states a downtime event can be in: every state but running and offline (DESIGN.md).
STOP_STATES = tuple(s for s in STATES if s not in ("running", "offline"))
Priority = Literal["low", "normal", "high", "urgent"]


def _duration(v: str | None) -> str | None:
    if v is not None:
        parse_duration(v)
    return v


def _aware(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-01-05T06:00:00+01:00")
    return v


class _RuleBase(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    checklist: list[str] = Field(default_factory=list)
    priority: Priority = "high"
    assignee: str | None = None
    active_from: datetime | None = None

    _active_from = field_validator("active_from")(_aware)

    def _common(self) -> dict[str, Any]:
        cols: dict[str, Any] = {"name": self.name, "checklist": self.checklist,
                                "priority": self.priority}
        if self.active_from is not None:
            cols["active_from"] = self.active_from
        return cols


class ConditionRuleSpec(_RuleBase):
    """One condition rule; see the module docstring."""

    machine: str | None = None
    kind: str | None = Field(default=None, min_length=1, max_length=64)
    tag: str | None = Field(default=None, min_length=1, max_length=64)
    above: float | None = None
    below: float | None = None
    lasting: str | None = None
    clear: float | None = None
    state: Literal[STATES] | None = None  # type: ignore[valid-type]
    reason: str | None = Field(default=None, min_length=1, max_length=64)
    count: int | None = Field(default=None, gt=0)
    within: str | None = None
    clear_count: int | None = Field(default=None, gt=0)
    estimated_minutes: int | None = Field(default=None, gt=0)
    instructions: str = ""

    _durations = field_validator("lasting", "within")(_duration)

    @model_validator(mode="after")
    def _consistent(self) -> ConditionRuleSpec:
        if (self.machine is None) == (self.kind is None):
            raise ValueError("give either machine (one machine) or kind (every machine of "
                             "that kind in the plant)")
        if (self.tag is None) == (self.state is None):
            raise ValueError("give either tag (a rule on telemetry) or state (a rule on "
                             "counting state rows)")
        if self.tag is not None:
            self._telemetry()
        else:
            self._state_count()
        return self

    def _telemetry(self) -> None:
        for name in ("reason", "count", "within", "clear_count"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} belongs to a state rule; a tag rule takes above or "
                                 "below, lasting and clear")
        if (self.above is None) == (self.below is None):
            raise ValueError(f"tag {self.tag!r}: give either above or below (the threshold)")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"clear ({self.clear:g}) must be at or below above "
                                 f"({self.above:g}): the value the episode ends at")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"clear ({self.clear:g}) must be at or above below "
                                 f"({self.below:g}): the value the episode ends at")

    def _state_count(self) -> None:
        for name in ("above", "below", "lasting", "clear"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} belongs to a tag rule; a state rule takes reason, "
                                 "count, within and clear_count")
        if self.count is None or self.within is None:
            raise ValueError(f"state {self.state!r}: give count (how many rows) and within "
                             "(in what time, e.g. 8 hours)")
        if self.clear_count is not None and self.clear_count > self.count:
            raise ValueError(f"clear_count ({self.clear_count}) must be at most count "
                             f"({self.count})")

    def columns(self) -> dict[str, Any]:
        """The pm_condition_rules columns (without tenant, machine id and assignee id)."""
        cols = self._common() | {"machine_kind": self.kind, "instructions": self.instructions,
                                 "estimated_minutes": self.estimated_minutes}
        if self.tag is not None:
            threshold = self.above if self.above is not None else self.below
            cols |= {"rule_kind": "telemetry", "tag": self.tag,
                     "comparison": "above" if self.above is not None else "below",
                     "threshold": threshold,
                     "clear_threshold": threshold if self.clear is None else self.clear,
                     "for_seconds": parse_duration(self.lasting).total_seconds()
                     if self.lasting else 0}
        else:
            assert self.within is not None
            cols |= {"rule_kind": "state_count", "state": self.state,
                     "reason_code": self.reason, "count_threshold": self.count,
                     "clear_count": self.clear_count,
                     "window_seconds": parse_duration(self.within).total_seconds()}
        return cols


class CorrectiveRuleSpec(_RuleBase):
    """One corrective rule; see the module docstring."""

    states: list[Literal[STOP_STATES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["fault"], min_length=1)
    min_duration: str | None = None
    reasons: list[str] | None = Field(default=None, min_length=1)

    _duration = field_validator("min_duration")(_duration)

    @model_validator(mode="after")
    def _consistent(self) -> CorrectiveRuleSpec:
        if self.min_duration is None and self.reasons is None:
            raise ValueError("give min_duration (a stop at least this long), reasons (a stop "
                             "with one of these reason codes) or both")
        return self

    def columns(self) -> dict[str, Any]:
        """The pm_corrective_rules columns (without tenant and assignee id)."""
        return self._common() | {
            "states": self.states, "reason_codes": self.reasons,
            "min_duration_s": parse_duration(self.min_duration).total_seconds()
            if self.min_duration else None}


def insert_condition_rule(conn: psycopg.Connection, spec: ConditionRuleSpec,
                          organization_id: uuid.UUID, plant_id: uuid.UUID) -> uuid.UUID:
    """Insert `spec` (inside the caller's tenant transaction); returns the rule's id."""
    return insert_row(conn, "pm_condition_rules", spec.columns(), organization_id, plant_id,
                      spec.machine, spec.assignee)


def insert_corrective_rule(conn: psycopg.Connection, spec: CorrectiveRuleSpec,
                           organization_id: uuid.UUID, plant_id: uuid.UUID | None
                           ) -> uuid.UUID:
    """Insert `spec` (inside the caller's tenant transaction; plant None: the whole
    organization); returns the rule's id."""
    return insert_row(conn, "pm_corrective_rules", spec.columns(), organization_id, plant_id,
                      assignee=spec.assignee)
