"""Read-only mappings of the tenant views over the time series (sql/0004, 0006), for the API's
queries. Their own MetaData: they are views, never created from models, and the schema test
compares `Base.metadata` with the tables alone."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import TIMESTAMP, MetaData, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.models.base import SCHEMA


class View(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)
    type_annotation_map = {datetime: TIMESTAMP(timezone=True), uuid.UUID: UUID(as_uuid=True)}


class StatusHistoryView(View):
    """`mes.v_machine_status_history`: a machine's state at each change and heartbeat."""

    __tablename__ = "v_machine_status_history"

    organization_id: Mapped[uuid.UUID]
    plant_id: Mapped[uuid.UUID | None]
    machine_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(Text)


class DowntimeEventView(View):
    """`mes.v_downtime_event`: one row per stop, as the edge reported it."""

    __tablename__ = "v_downtime_event"

    organization_id: Mapped[uuid.UUID]
    plant_id: Mapped[uuid.UUID | None]
    machine_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    micro_stop: Mapped[bool | None]
    updated_at: Mapped[datetime]
