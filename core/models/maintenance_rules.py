"""Condition rules and their episodes, and corrective rules on downtime (sql/0011)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, Base, TenantEntity, tenant_table_args
from core.models.maintenance import PmTarget


class PmConditionRule(PmTarget, Base):
    """A rule on telemetry (`tag` `comparison` `threshold` for `for_seconds`, cleared past
    `clear_threshold`) or on states (`count_threshold` rows of `state` [with `reason_code`]
    within `window_seconds`, cleared below `clear_count`); one inspection task per episode."""

    __tablename__ = "pm_condition_rules"

    rule_kind: Mapped[str] = mapped_column(Text)
    tag: Mapped[str | None] = mapped_column(Text)
    comparison: Mapped[str | None] = mapped_column(Text)
    threshold: Mapped[float | None]
    clear_threshold: Mapped[float | None]
    for_seconds: Mapped[float] = mapped_column(server_default="0")
    state: Mapped[str | None] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(Text)
    count_threshold: Mapped[int | None]
    clear_count: Mapped[int | None]
    window_seconds: Mapped[float | None]
    active_from: Mapped[datetime] = mapped_column(server_default=NOW)
    checklist: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'"))
    priority: Mapped[str] = mapped_column(Text, server_default="high")
    estimated_minutes: Mapped[int | None]
    default_assignee_id: Mapped[uuid.UUID | None]
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))


class PmConditionEpisode(TenantEntity, Base):
    """Episode n of a rule on a machine: tripped, cleared (NULL: on), and its evidence rows."""

    __tablename__ = "pm_condition_episodes"
    __table_args__ = (
        UniqueConstraint("rule_id", "machine_id", "episode"),
        *tenant_table_args(("rule_id", "pm_condition_rules"), ("machine_id", "machines")),
    )

    rule_id: Mapped[uuid.UUID]
    machine_id: Mapped[uuid.UUID]
    episode: Mapped[int]
    started_at: Mapped[datetime]
    tripped_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    evidence: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'"))


class PmCorrectiveRule(TenantEntity, Base):
    """A downtime event in `states` lasting `min_duration_s` or with a reason in
    `reason_codes` opens one corrective task."""

    __tablename__ = "pm_corrective_rules"
    __table_args__ = (
        UniqueConstraint("organization_id", "id"),
        *tenant_table_args(("default_assignee_id", "users")),
    )

    name: Mapped[str] = mapped_column(Text)
    states: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("ARRAY['fault']"))
    min_duration_s: Mapped[float | None]
    reason_codes: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    active_from: Mapped[datetime] = mapped_column(server_default=NOW)
    checklist: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'"))
    priority: Mapped[str] = mapped_column(Text, server_default="high")
    default_assignee_id: Mapped[uuid.UUID | None]
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
