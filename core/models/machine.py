"""Machines and the gateways that report for them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TenantEntity, tenant_table_args


class Machine(TenantEntity, Base):
    """A machine on a plant floor; its code is what the edge agent's records name."""

    __tablename__ = "machines"
    __table_args__ = (
        UniqueConstraint("organization_id", "code"),
        UniqueConstraint("organization_id", "id"),
        *tenant_table_args(),
    )

    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))


class Gateway(TenantEntity, Base):
    """An edge gateway, trusted for exactly one organization and plant (checked per topic)."""

    __tablename__ = "gateways"
    __table_args__ = (UniqueConstraint("organization_id", "id"), *tenant_table_args())

    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
