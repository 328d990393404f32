"""Materials, work orders and the machines a work order ran on."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Numeric, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, Base, TenantEntity, tenant_table_args


class Material(TenantEntity, Base):
    __tablename__ = "materials"
    __table_args__ = (
        UniqueConstraint("organization_id", "code"),
        UniqueConstraint("organization_id", "id"),
        *tenant_table_args(),
    )

    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(Text, server_default="pcs")


class WorkOrder(TenantEntity, Base):
    """Status: planned, released, in_progress, completed, closed, cancelled."""

    __tablename__ = "work_orders"
    __table_args__ = (
        UniqueConstraint("organization_id", "number"),
        UniqueConstraint("organization_id", "id"),
        *tenant_table_args(("material_id", "materials")),
    )

    number: Mapped[str] = mapped_column(Text)
    material_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3), server_default="0")
    status: Mapped[str] = mapped_column(Text, server_default="planned")
    planned_start: Mapped[datetime | None]
    planned_end: Mapped[datetime | None]
    actual_start: Mapped[datetime | None]
    actual_end: Mapped[datetime | None]


class WorkOrderMachine(TenantEntity, Base):
    """The WorkOrder-Machine junction: which machine worked on an order, from when to when."""

    __tablename__ = "work_order_machines"
    __table_args__ = (
        UniqueConstraint("work_order_id", "machine_id", "assigned_at"),
        *tenant_table_args(("work_order_id", "work_orders"), ("machine_id", "machines")),
    )

    work_order_id: Mapped[uuid.UUID]
    machine_id: Mapped[uuid.UUID] = mapped_column(index=True)
    assigned_at: Mapped[datetime] = mapped_column(server_default=NOW)
    released_at: Mapped[datetime | None]
