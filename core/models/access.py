"""API tokens and broker credentials: who may call the API, which gateway may use the broker."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, SCHEMA, Base, TenantEntity, tenant_table_args


class ApiToken(TenantEntity, Base):
    """An API token of a user: only its keyed digest is stored (core/tokens.py)."""

    __tablename__ = "api_tokens"
    __table_args__ = tenant_table_args(("user_id", "users"))

    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(Text, server_default="")
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class BrokerCredential(Base):
    """A broker account's mosquitto password hash (not a tenant table: only the owner reads it)."""

    __tablename__ = "broker_credentials"

    username: Mapped[str] = mapped_column(Text, primary_key=True)
    gateway_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.gateways.id"), unique=True
    )
    password_hash: Mapped[str] = mapped_column(Text)
    rotated_at: Mapped[datetime] = mapped_column(server_default=NOW)
