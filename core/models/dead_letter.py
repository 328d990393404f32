"""Messages the ingest could not use, kept with their reason (not a tenant table)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Identity, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, Base


class DeadLetter(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(server_default=NOW)
    topic: Mapped[str] = mapped_column(Text)
    gateway_code: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, server_default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int]
    replayed_at: Mapped[datetime | None]
