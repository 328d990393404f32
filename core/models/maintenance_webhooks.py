"""Webhook endpoints of a plant's CMMS and the delivery log (sql/0011)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, Base, TenantEntity, tenant_table_args


class PmWebhook(TenantEntity, Base):
    """An endpoint that gets every task event, signed with `secret` (HMAC-SHA256)."""

    __tablename__ = "pm_webhooks"
    __table_args__ = (UniqueConstraint("organization_id", "id"), *tenant_table_args())

    name: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))


class PmWebhookDelivery(TenantEntity, Base):
    """One history row to one webhook: pending (retried with backoff), delivered or failed."""

    __tablename__ = "pm_webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "history_id"),
        *tenant_table_args(("webhook_id", "pm_webhooks"), ("history_id", "pm_task_history")),
    )

    webhook_id: Mapped[uuid.UUID]
    history_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=NOW)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
