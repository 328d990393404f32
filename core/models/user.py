"""The one User model of the project (one `users` table; roles and scope in docs/tenancy.md)."""

from __future__ import annotations

from sqlalchemy import Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TenantEntity, tenant_table_args


class User(TenantEntity, Base):
    """A person of an organization with one or more ROLES, scoped to one plant (`plant_id`) or,
    when that is NULL, to the whole organization (sql/0007)."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("organization_id", "email"),
        UniqueConstraint("organization_id", "id"),
        *tenant_table_args(),
    )

    email: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("ARRAY['viewer']"))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))


ROLES = ("viewer", "operator", "quality", "maintenance", "plant_admin", "org_admin")
"""Every role a user may hold, least to most (the CHECK of sql/0007 lists the same)."""
