"""The one User model of the project (one `users` table, DESIGN.md)."""

from __future__ import annotations

from sqlalchemy import Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TenantEntity, tenant_table_args


class User(TenantEntity, Base):
    """A person of an organization, optionally tied to a home plant (`plant_id`)."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("organization_id", "email"),
        UniqueConstraint("organization_id", "id"),
        *tenant_table_args(),
    )

    email: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text, server_default="operator")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
