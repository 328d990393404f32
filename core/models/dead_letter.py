"""Messages the ingest could not use, kept with their reason (not a tenant table).

One row per (topic, payload hash): a message delivered again, or the same bytes published
again, counts in `times_seen` and `last_seen_at` (sql/0008). The ingest writes only through
`mes.record_dead_letter`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Identity, LargeBinary, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NOW, Base


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("topic", "payload_sha256",
                                       name="dead_letters_topic_payload_key"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(server_default=NOW)
    topic: Mapped[str] = mapped_column(Text)
    gateway_code: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, server_default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int]
    # SHA-256 of the whole payload as received (payload itself may be cut at the bound).
    payload_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    times_seen: Mapped[int] = mapped_column(server_default="1")
    last_seen_at: Mapped[datetime] = mapped_column(server_default=NOW)
    replayed_at: Mapped[datetime | None]
