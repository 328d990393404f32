"""Time-series tables (hypertables with TimescaleDB). The application role cannot touch them:
it reads `mes.v_<table>` views and writes through `mes.write_*` functions (sql/0004)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, Base, TimeSeriesRow


class MachineStatusHistory(TimeSeriesRow, Base):
    """Natural key (machine, ts): a state on every change and at each heartbeat."""

    __tablename__ = "machine_status_history"

    ts: Mapped[datetime] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(Text)


class DowntimeEvent(TimeSeriesRow, Base):
    """One stop, keyed by the edge-made event_id (with machine and start for the hypertable)."""

    __tablename__ = "downtime_event"

    started_at: Mapped[datetime] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ended_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    micro_stop: Mapped[bool | None]
    truncated: Mapped[bool | None]  # sql/0010
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)


class MachineCounter(TimeSeriesRow, Base):
    """Natural key (machine, tag, ts); `value` is the running total, rollover unwrapped."""

    __tablename__ = "machine_counter"

    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float]


class MachineTelemetry(TimeSeriesRow, Base):
    """Natural key (machine, tag, ts): analog values after the edge's deadband."""

    __tablename__ = "machine_telemetry"

    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float]
