"""Organizations and plants: the tenant roots."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NEW_UUID, SCHEMA, TENANT_USER, Audited, Base, same_org_fk


class Organization(Audited, Base):
    """A customer: its rows are invisible to every other organization."""

    __tablename__ = "organizations"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=NEW_UUID)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)

    # Organizations reference users with plain keys: a user always belongs to an organization.
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.users.id", use_alter=True), server_default=TENANT_USER
    )
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.users.id", use_alter=True), server_default=TENANT_USER
    )


class Plant(Audited, Base):
    """A site of an organization; a plant context sees its own and organization-wide rows."""

    __tablename__ = "plants"
    __table_args__ = (
        UniqueConstraint("organization_id", "code"),
        UniqueConstraint("organization_id", "id"),
        same_org_fk("created_by", "users"),
        same_org_fk("updated_by", "users"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=NEW_UUID)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.organizations.id"), index=True
    )
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text, server_default="UTC")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
