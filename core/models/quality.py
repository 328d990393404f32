"""Quality: non-conformance reports and inspection logs."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, Base, TenantEntity, tenant_table_args


class Ncr(TenantEntity, Base):
    """Lifecycle: open, investigating, contained, resolved, closed, cancelled; resolved and
    closed reports name who resolved them and when (a CHECK in the schema), and the disposition
of the material (sql/0012)."""

    __tablename__ = "ncr"
    __table_args__ = (
        UniqueConstraint("organization_id", "number"),
        *tenant_table_args(
            ("work_order_id", "work_orders"),
            ("material_id", "materials"),
            ("assignee_id", "users"),
            ("resolved_by_user_id", "users"),
        ),
    )

    number: Mapped[str] = mapped_column(Text)
    work_order_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    material_id: Mapped[uuid.UUID | None]
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    severity: Mapped[str] = mapped_column(Text, server_default="minor")
    status: Mapped[str] = mapped_column(Text, server_default="open")
    assignee_id: Mapped[uuid.UUID | None]
    resolved_by_user_id: Mapped[uuid.UUID | None]
    resolved_at: Mapped[datetime | None]
    disposition: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str] = mapped_column(Text, server_default="")


class InspectionLog(TenantEntity, Base):
    """One inspection of a characteristic: result pass, fail or conditional."""

    __tablename__ = "inspection_logs"
    __table_args__ = tenant_table_args(
        ("work_order_id", "work_orders"), ("material_id", "materials"), ("inspector_id", "users")
    )

    work_order_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    material_id: Mapped[uuid.UUID | None]
    inspector_id: Mapped[uuid.UUID | None]
    inspected_at: Mapped[datetime] = mapped_column(server_default=NOW)
    characteristic: Mapped[str] = mapped_column(Text, server_default="")
    result: Mapped[str] = mapped_column(Text)
    measured_value: Mapped[float | None]
    notes: Mapped[str] = mapped_column(Text, server_default="")
