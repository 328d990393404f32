"""The outbox's bound: what it holds (counted in memory) and what it drops at the limit.

Sizes are payload bytes (stored pieces and message payloads), not the file's size: SQLite adds
its own overhead (roughly the index and page slack) on top, and a file does not shrink when
data leaves it; its free pages are reused.

At `max_bytes` the outbox drops pending records in `DROP_ORDER` (telemetry first, downtime
last), oldest first, whole pieces (one group commit's records of a kind) at a time, down to
90 % of the bound so that a full outbox drops in a few large steps rather than a few records at
every commit. Only when no pending record is left are stored
messages dropped, in the same order of kinds; the seq gap this leaves is what the ingest's gap
detection is for. Anything older than `max_age_s` is dropped too. Every drop is counted by kind
and logged as a warning.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import takewhile

from core.wire import Kind
from edge_agent.delivery.settings import DROP_ORDER, OutboxConfig

log = logging.getLogger(__name__)

_LOW_WATER = 0.9
_AGE_CHECK_S = 1.0
_CHUNK = 2000


class Bound:
    """Counts of the outbox's contents, and the drop policy at its bound.

    Called by `Outbox` with its database lock held and inside its transaction; on a rollback
    the outbox calls `load()` to count again from the file.
    """

    def __init__(self, config: OutboxConfig, *, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self.rec_count: Counter[str] = Counter()
        self.rec_bytes: Counter[str] = Counter()
        self.messages = 0
        self.msg_bytes = 0
        self.dropped: Counter[Kind] = Counter()
        self._next_age_check = 0.0

    def load(self, conn: sqlite3.Connection) -> None:
        """Count what the file holds (at open and after a rolled-back transaction)."""
        self.rec_count.clear()
        self.rec_bytes.clear()
        for kind, n, size in conn.execute(
            "SELECT kind, sum(n), sum(length(body)) FROM piece GROUP BY kind"
        ):
            self.rec_count[kind] = n
            self.rec_bytes[kind] = size
        self.messages, self.msg_bytes = conn.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM message"
        ).fetchone()

    @property
    def records(self) -> int:
        return sum(self.rec_count.values())

    @property
    def bytes(self) -> int:
        return sum(self.rec_bytes.values()) + self.msg_bytes

    def added(self, rows: Iterable[tuple[str, str, float, int, bytes]]) -> None:
        """Pieces stored: rows of the outbox's `piece` table (kind, form, added_at, n, body)."""
        for kind, _, _, n, body in rows:
            self.rec_count[kind] += n
            self.rec_bytes[kind] += len(body)

    def moved(self, kind: Kind, n: int, record_bytes: int, payload_bytes: int) -> None:
        """`n` records of `kind`, stored in `record_bytes` of pieces, became one message."""
        self.rec_count[kind.value] -= n
        self.rec_bytes[kind.value] -= record_bytes
        self.messages += 1
        self.msg_bytes += payload_bytes

    def acked(self, payload_bytes: int) -> None:
        self.messages -= 1
        self.msg_bytes -= payload_bytes

    def oldest(self, conn: sqlite3.Connection) -> float | None:
        """When the oldest record still held was added (pending or inside a message)."""
        first = conn.execute("SELECT added_at FROM piece ORDER BY id LIMIT 1").fetchone()
        msg = conn.execute("SELECT min(oldest_at) FROM message").fetchone()
        times = [t for t in ((first or (None,))[0], msg[0]) if t is not None]
        return min(times) if times else None

    def check_due(self) -> bool:
        """True when the age bound should be checked even if nothing new was added."""
        return self._clock() >= self._next_age_check

    def enforce(self, conn: sqlite3.Connection) -> None:
        """Drop what exceeds the bound, inside the caller's transaction."""
        dropped: Counter[Kind] = Counter()
        if self.bytes > self.config.max_bytes:
            self._drop_bytes(conn, dropped)
            if dropped:
                self._report(dropped, f"max_bytes ({self.config.max_bytes})")
        now = self._clock()
        if now >= self._next_age_check:
            self._next_age_check = now + _AGE_CHECK_S
            expired: Counter[Kind] = Counter()
            self._drop_older(conn, now - self.config.max_age_s, expired)
            if expired:
                self._report(expired, f"max_age_s ({self.config.max_age_s:g})")

    def _drop_bytes(self, conn: sqlite3.Connection, dropped: Counter[Kind]) -> None:
        target = int(self.config.max_bytes * _LOW_WATER)
        for kind in DROP_ORDER:
            while self.bytes > target and self.rec_count[kind.value] > 0:
                rows = conn.execute(
                    "SELECT id, n, length(body) FROM piece WHERE kind = ? ORDER BY id LIMIT ?",
                    (kind.value, _CHUNK),
                ).fetchall()
                freed = n = i = 0
                while i < len(rows) and self.bytes - freed > target:
                    n += rows[i][1]
                    freed += rows[i][2]
                    i += 1
                conn.execute(
                    "DELETE FROM piece WHERE kind = ? AND id <= ?", (kind.value, rows[i - 1][0])
                )
                self.rec_count[kind.value] -= n
                self.rec_bytes[kind.value] -= freed
                dropped[kind] += n
        for kind in DROP_ORDER:
            while self.bytes > target:
                row = conn.execute(
                    "DELETE FROM message WHERE seq = (SELECT min(seq) FROM message WHERE kind = ?)"
                    " RETURNING n_records, length(payload)",
                    (kind.value,),
                ).fetchone()
                if row is None:
                    break
                self.acked(row[1])
                dropped[kind] += row[0]

    def _drop_older(self, conn: sqlite3.Connection, cutoff: float, dropped: Counter[Kind]) -> None:
        for kind in DROP_ORDER:
            # Pieces are stored in time order, so the expired ones are a prefix by id.
            while True:
                rows = conn.execute(
                    "SELECT id, added_at, n, length(body) FROM piece WHERE kind = ?"
                    " ORDER BY id LIMIT ?",
                    (kind.value, _CHUNK),
                ).fetchall()
                old = list(takewhile(lambda r: r[1] < cutoff, rows))
                if not old:
                    break
                conn.execute(
                    "DELETE FROM piece WHERE kind = ? AND id <= ?", (kind.value, old[-1][0])
                )
                n = sum(r[2] for r in old)
                self.rec_count[kind.value] -= n
                self.rec_bytes[kind.value] -= sum(r[3] for r in old)
                dropped[kind] += n
                if len(old) < len(rows):
                    break
            for n, size in conn.execute(
                "DELETE FROM message WHERE kind = ? AND oldest_at < ?"
                " RETURNING n_records, length(payload)",
                (kind.value, cutoff),
            ).fetchall():
                self.acked(size)
                dropped[kind] += n

    def _report(self, dropped: Counter[Kind], bound: str) -> None:
        self.dropped.update(dropped)
        log.warning(
            "outbox bound reached: records dropped",
            extra={
                "bound": bound,
                "path": str(self.config.path),
                "dropped": {k.value: n for k, n in dropped.items()},
                "dropped_total": {k.value: n for k, n in self.dropped.items()},
            },
        )
