"""Record messages the ingest cannot use: topic, bounded raw payload, reason, detail, time."""

from __future__ import annotations

import hashlib

from psycopg_pool import ConnectionPool

from core.intake.writer import Retrier
from core.wire import DeadLetterReason

RECORD = "SELECT mes.record_dead_letter(%s, %s, %s, %s, %s, %s, %s)"


class DeadLetters:
    """Writes dead letters to `mes.dead_letters` as the application role, through
    `mes.record_dead_letter` (reading and replaying them is `mes ingest dead-letters`, with the
    owner's URL).

    One letter per (topic, payload): a message the broker delivers again (the ingest was killed
    after recording it, before its acknowledgement reached the broker) or the same bytes
    published again count as repeats of the letter already there. Payloads are kept up to
    `payload_max` bytes, enough to replay a typical message.
    """

    def __init__(self, pool: ConnectionPool, retry: Retrier, payload_max: int) -> None:
        self._pool = pool
        self._retry = retry
        self._payload_max = payload_max

    def record(self, topic: str, payload: bytes, reason: DeadLetterReason, detail: str,
               gateway_code: str | None) -> int:
        """Commit one dead letter (retrying while the database is away) and return how many
        times it has been seen. Payloads beyond the bound are cut (payload_size keeps the
        original length, the key hashes the whole payload)."""
        params = (topic[:1024], gateway_code, reason, detail[:4000],
                  payload[: self._payload_max], len(payload), hashlib.sha256(payload).digest())

        def record() -> int:
            with self._pool.connection() as conn:
                row = conn.execute(RECORD, params).fetchone()
            assert row is not None  # the function always returns a row
            return int(row[0])

        return self._retry(record, "record dead letter")
