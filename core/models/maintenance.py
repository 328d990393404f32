"""Preventive maintenance: schedules, the tasks raised from them (and from condition rules and
downtime), and the tasks' history (sql/0003, sql/0011; docs/maintenance.md)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import INTERVAL, JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from core.models.base import NOW, Base, TenantEntity, tenant_table_args

TASK_STATUSES = ("open", "acknowledged", "in_progress", "done", "skipped", "cancelled")
"""Every status a task may have; the first three are open work."""
PRIORITIES = ("low", "normal", "high", "urgent")


class PmTarget(TenantEntity):
    """What schedules and condition rules share: their name and instructions, and their target,
    one machine (`machine_id`) or every machine of `machine_kind` in the plant."""

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # A function: each table needs constraint objects of its own.
        return (
            UniqueConstraint("organization_id", "id"),
            *tenant_table_args(("machine_id", "machines"), ("default_assignee_id", "users")),
        )

    machine_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    machine_kind: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    instructions: Mapped[str] = mapped_column(Text, server_default="")


class PmSchedule(PmTarget, Base):
    """What a schedule triggers on (`trigger_kind`): the calendar part (`calendar_every`
    `calendar_unit`, or `cron`, in the plant's zone; `lead_time` raises early), the meter part
    (`interval_value` runtime hours or counts of `counter_tag`; `lead_value` in that unit), or
    both (`combined`, whichever first, its meter in `meter_kind`). `fixed` keeps the anchor's
    grid, `floating` counts from the last completion. Targets `machine_id` or every machine of
    `machine_kind` in its plant."""

    __tablename__ = "pm_schedules"

    trigger_kind: Mapped[str] = mapped_column(Text)
    interval_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 3))
    lead_value: Mapped[Decimal] = mapped_column(Numeric(14, 3), server_default="0")
    schedule_mode: Mapped[str] = mapped_column(Text, server_default="fixed")
    counter_tag: Mapped[str | None] = mapped_column(Text)
    anchor_at: Mapped[datetime] = mapped_column(server_default=NOW)
    anchor_meter: Mapped[float] = mapped_column(server_default="0")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    calendar_every: Mapped[int | None]
    calendar_unit: Mapped[str | None] = mapped_column(Text)
    cron: Mapped[str | None] = mapped_column(Text)
    meter_kind: Mapped[str | None] = mapped_column(Text)
    lead_time: Mapped[timedelta] = mapped_column(INTERVAL, server_default=text("'0'"))
    tolerance_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="0")
    catch_up: Mapped[str] = mapped_column(Text, server_default="one")
    checklist: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'"))
    priority: Mapped[str] = mapped_column(Text, server_default="normal")
    estimated_minutes: Mapped[int | None]
    default_assignee_id: Mapped[uuid.UUID | None]


class PmTask(TenantEntity, Base):
    """One piece of work: occurrence n of a schedule, episode n of a condition rule, or the
    corrective task of a downtime event; each unique. Lifecycle open -> acknowledged ->
    in_progress -> done | skipped (with a reason), who and when per step."""

    __tablename__ = "pm_tasks"
    __table_args__ = (
        UniqueConstraint("schedule_id", "machine_id", "occurrence",
                         name="pm_tasks_schedule_occurrence_key"),
        UniqueConstraint("condition_rule_id", "machine_id", "occurrence",
                         name="pm_tasks_condition_episode_key"),
        UniqueConstraint("downtime_event_id", name="pm_tasks_downtime_event_key"),
        UniqueConstraint("organization_id", "id"),
        *tenant_table_args(
            ("schedule_id", "pm_schedules"),
            ("machine_id", "machines"),
            ("assignee_id", "users"),
            ("completed_by_user_id", "users"),
            ("condition_rule_id", "pm_condition_rules"),
            ("corrective_rule_id", "pm_corrective_rules"),
            ("acknowledged_by_user_id", "users"),
            ("started_by_user_id", "users"),
            ("skipped_by_user_id", "users"),
        ),
    )

    schedule_id: Mapped[uuid.UUID | None]
    machine_id: Mapped[uuid.UUID] = mapped_column(index=True)
    occurrence: Mapped[int]
    due_at: Mapped[datetime | None]
    due_meter: Mapped[float | None]
    status: Mapped[str] = mapped_column(Text, server_default="open")
    assignee_id: Mapped[uuid.UUID | None]
    completed_by_user_id: Mapped[uuid.UUID | None]
    completed_at: Mapped[datetime | None]
    meter_at_completion: Mapped[float | None]
    notes: Mapped[str] = mapped_column(Text, server_default="")
    task_kind: Mapped[str] = mapped_column(Text, server_default="preventive")
    title: Mapped[str] = mapped_column(Text, server_default="")
    condition_rule_id: Mapped[uuid.UUID | None]
    corrective_rule_id: Mapped[uuid.UUID | None]
    downtime_event_id: Mapped[uuid.UUID | None]
    raised_by: Mapped[str | None] = mapped_column(Text)
    meter_at_raise: Mapped[float | None]
    overdue_at: Mapped[datetime | None]
    overdue_meter: Mapped[float | None]
    missed_occurrences: Mapped[int] = mapped_column(server_default="0")
    priority: Mapped[str] = mapped_column(Text, server_default="normal")
    checklist: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'"))
    estimated_minutes: Mapped[int | None]
    evidence: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'"))
    acknowledged_by_user_id: Mapped[uuid.UUID | None]
    acknowledged_at: Mapped[datetime | None]
    started_by_user_id: Mapped[uuid.UUID | None]
    started_at: Mapped[datetime | None]
    skipped_by_user_id: Mapped[uuid.UUID | None]
    skipped_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(Text)


class PmTaskHistory(TenantEntity, Base):
    """A task raised or changed (written by a trigger on pm_tasks); also the notification
    outbox: `published_at` once MQTT acknowledged it."""

    __tablename__ = "pm_task_history"
    __table_args__ = (
        UniqueConstraint("organization_id", "id"),
        *tenant_table_args(("actor_id", "users"), ("task_id", "pm_tasks")),
    )

    task_id: Mapped[uuid.UUID]
    event: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[uuid.UUID | None]
    at: Mapped[datetime] = mapped_column(server_default=text("clock_timestamp()"))
    published_at: Mapped[datetime | None]
