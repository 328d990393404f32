"""Record messages the ingest cannot use: topic, bounded raw payload, reason, detail, time."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from core.wire import DeadLetterReason
from ingest.writer import Retrier

INSERT = ("INSERT INTO mes.dead_letters (topic, gateway_code, reason, detail, payload, "
          "payload_size) VALUES (%s, %s, %s, %s, %s, %s)")


class DeadLetters:
    """Writes dead letters to `mes.dead_letters` as the application role (insert only: reading
    and replaying them is `mes ingest dead-letters`, with the owner's URL).

    Payloads are kept up to `payload_max` bytes, enough to replay a typical message.
    """

    def __init__(self, pool: ConnectionPool, retry: Retrier, payload_max: int) -> None:
        self._pool = pool
        self._retry = retry
        self._payload_max = payload_max

    def record(self, topic: str, payload: bytes, reason: DeadLetterReason, detail: str,
               gateway_code: str | None) -> None:
        """Commit one dead letter (retrying while the database is away). Payloads beyond the
        bound are cut (payload_size keeps the original length)."""
        params = (topic[:1024], gateway_code, reason, detail[:4000],
                  payload[: self._payload_max], len(payload))

        def insert() -> None:
            with self._pool.connection() as conn:
                conn.execute(INSERT, params)

        self._retry(insert, "record dead letter")
