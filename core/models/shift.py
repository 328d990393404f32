"""Shifts and the handover between them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, Base, TenantEntity, tenant_table_args


class Shift(TenantEntity, Base):
    __tablename__ = "shifts"
    __table_args__ = (UniqueConstraint("organization_id", "id"), *tenant_table_args())

    name: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime]


class ShiftHandover(TenantEntity, Base):
    """Logged by the outgoing shift, acknowledged (who and when, together) by the next."""

    __tablename__ = "shift_handovers"
    __table_args__ = tenant_table_args(
        ("shift_id", "shifts"),
        ("logged_by_user_id", "users"),
        ("acknowledged_by_user_id", "users"),
    )

    shift_id: Mapped[uuid.UUID] = mapped_column(index=True)
    logged_by_user_id: Mapped[uuid.UUID]
    logged_at: Mapped[datetime] = mapped_column(server_default=NOW)
    notes: Mapped[str] = mapped_column(Text, server_default="")
    acknowledged_by_user_id: Mapped[uuid.UUID | None]
    acknowledged_at: Mapped[datetime | None]
