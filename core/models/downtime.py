"""What people say about a stop: a reason and comment per segment of a downtime event
(sql/0012). The edge's event itself is a time-series row the application cannot change."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TenantEntity, tenant_table_args


class DowntimeReason(TenantEntity, Base):
    """The reason of event `event_id` from `segment_start` to the next segment (or its end)."""

    __tablename__ = "downtime_reasons"
    __table_args__ = (
        UniqueConstraint("event_id", "segment_start"),
        *tenant_table_args(("machine_id", "machines")),
    )

    machine_id: Mapped[uuid.UUID] = mapped_column(index=True)
    event_id: Mapped[uuid.UUID]
    segment_start: Mapped[datetime]
    reason_code: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text, server_default="")
