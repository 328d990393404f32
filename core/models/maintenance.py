"""Preventive maintenance: schedules and the tasks they raise."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Numeric, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, Base, TenantEntity, tenant_table_args


class PmSchedule(TenantEntity, Base):
    """Triggers on the calendar (days), runtime hours or cycles of `counter_tag`; `lead_value`
    in the same unit raises the task early; `fixed` keeps the anchor's grid, `floating` counts
    from the last completion."""

    __tablename__ = "pm_schedules"
    __table_args__ = (
        UniqueConstraint("organization_id", "id"),
        *tenant_table_args(("machine_id", "machines")),
    )

    machine_id: Mapped[uuid.UUID] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(Text)
    instructions: Mapped[str] = mapped_column(Text, server_default="")
    trigger_kind: Mapped[str] = mapped_column(Text)
    interval_value: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    lead_value: Mapped[Decimal] = mapped_column(Numeric(14, 3), server_default="0")
    schedule_mode: Mapped[str] = mapped_column(Text, server_default="fixed")
    counter_tag: Mapped[str | None] = mapped_column(Text)
    anchor_at: Mapped[datetime] = mapped_column(server_default=NOW)
    anchor_meter: Mapped[float] = mapped_column(server_default="0")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))


class PmTask(TenantEntity, Base):
    """Occurrence n of a schedule (unique per schedule): due by time and/or meter reading."""

    __tablename__ = "pm_tasks"
    __table_args__ = (
        UniqueConstraint("schedule_id", "occurrence"),
        *tenant_table_args(
            ("schedule_id", "pm_schedules"),
            ("machine_id", "machines"),
            ("assignee_id", "users"),
            ("completed_by_user_id", "users"),
        ),
    )

    schedule_id: Mapped[uuid.UUID]
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
