"""Where the maintenance engine resumes reading: meter checkpoints and condition cursors
(sql/0015). Caches of readings from landed rows: a missing row only costs a read from scratch."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TenantEntity, tenant_table_args


class PmMeterCheckpoint(TenantEntity, Base):
    """A machine's meter (`meter_kind`, counter `tag` or '') read from `since` up to `at`:
    `value`, and what holds at `at` (`state`, or the counter's `last_value`)."""

    __tablename__ = "pm_meter_checkpoints"
    __table_args__ = (
        UniqueConstraint("machine_id", "meter_kind", "tag", "since"),
        *tenant_table_args(("machine_id", "machines")),
    )

    machine_id: Mapped[uuid.UUID]
    meter_kind: Mapped[str] = mapped_column(Text)
    tag: Mapped[str] = mapped_column(Text, server_default="")
    since: Mapped[datetime]
    at: Mapped[datetime]
    value: Mapped[float]
    state: Mapped[str | None] = mapped_column(Text)
    last_value: Mapped[float | None]
    rebuilt_at: Mapped[datetime]


class PmConditionCursor(TenantEntity, Base):
    """A rule's scan on a machine in episode state (`episode`, `tripped`) has seen the rows up
    to `at`; `run_start`: where the open run beyond a telemetry threshold began."""

    __tablename__ = "pm_condition_cursors"
    __table_args__ = (
        UniqueConstraint("rule_id", "machine_id"),
        *tenant_table_args(("rule_id", "pm_condition_rules"), ("machine_id", "machines")),
    )

    rule_id: Mapped[uuid.UUID]
    machine_id: Mapped[uuid.UUID]
    episode: Mapped[int]
    tripped: Mapped[bool]
    at: Mapped[datetime]
    run_start: Mapped[datetime | None]
    rebuilt_at: Mapped[datetime]
