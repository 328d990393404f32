"""The durable store-and-forward outbox: SQLite in WAL mode, one file per gateway.

Data flows through it in three steps (docs/edge-agent.md, "The outbox"):

1. `add()` takes a record from the state layer into memory; a background thread commits what
   was added every `commit_interval_ms`, in one transaction (group commit), so durability costs
   one disk flush per interval, not per record. A group's records are stored as one row per
   kind, a *piece*: already encoded as its part of a message body (`core.wire.encode_piece`:
   record objects, or a block of columns for counters and telemetry in the columns form), so
   that a record costs SQLite nothing of its own. A record is safe from a crash (even SIGKILL,
   and with `synchronous=FULL` from a power cut) once its group has committed; `flush()`
   commits now.
2. `assemble()` turns pending pieces that are due (committed before the last `mark_due()`, the
   publisher's flush tick) into messages: one envelope of one kind, at most `max_records`
   records, the gateway's next `seq`, made by splicing pieces (a piece too large for one message
   is split). The message is committed before it is returned, so it is stored before it is
   published, and after a restart it is published again with the same seq and the same payload.
   Kinds take turns (see `assemble`).
3. `ack(seq)` (on PUBACK) removes a message; the delete rides on the next group commit, so an
   ack lost to a crash only means one harmless duplicate.

The store is bounded by bytes and age (`OutboxConfig`, `DROP_ORDER`); what goes at the bound is
counted by kind and logged. A small key/value table (`get_state`/`put_state`) keeps the agent's
own state (counter totals, open downtime events) in the same file, committed in the same groups
as the records, so that state and the records that carry it survive a crash together.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from core.wire import (
    KIND_OF,
    PAYLOAD_OVERHEAD,
    RECORD_KINDS,
    Kind,
    Record,
    WireForm,
    decode_piece,
    encode_piece,
    form_of,
    payload,
)
from edge_agent.delivery.outbox_bound import Bound
from edge_agent.delivery.settings import OutboxConfig

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS piece (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: ids order the pieces and mark_due
    kind TEXT NOT NULL,
    form TEXT NOT NULL,      -- core.wire.WireForm of body
    added_at REAL NOT NULL,  -- when its first record was handed over
    n INTEGER NOT NULL,      -- records in body
    body BLOB NOT NULL       -- core.wire.encode_piece
);
CREATE INDEX IF NOT EXISTS piece_kind_id ON piece (kind, id);
CREATE TABLE IF NOT EXISTS message (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    oldest_at REAL NOT NULL,
    n_records INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS agent_state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class OutboxInUse(RuntimeError):
    """Another process has this outbox open: two agents must never drain one file."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as stored: what is published, byte for byte, however often."""

    seq: int
    kind: Kind
    payload: bytes
    n_records: int


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """What the outbox holds, for metrics; `bytes` counts the stored pieces and messages."""

    records: int
    messages: int
    bytes: int
    oldest_age_s: float | None


class Outbox:
    """One gateway's outbox file. Thread-safe; open with `Outbox.open()`, close with `close()`."""

    def __init__(
        self,
        config: OutboxConfig,
        gateway: str,
        *,
        form: WireForm = WireForm.COLUMNS,
        piece_records: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.gateway = gateway
        self.form = form
        self._piece_records = piece_records
        self._clock = clock
        self._db_lock = threading.Lock()
        self._buf_lock = threading.Lock()
        # Records handed over and not yet committed, by kind, with when the first came.
        self._buf: dict[Kind, list[Record]] = {}
        self._buf_at: dict[Kind, float] = {}
        self._buf_n = 0
        self._state_buf: dict[str, bytes] = {}
        self._ack_buf: list[int] = []
        self._acked: set[int] = set()
        self._rotation: deque[Kind] = deque(RECORD_KINDS)
        self._exhausted: set[Kind] = set()  # kinds with no due record left until the next tick
        self._encoder = msgspec.json.Encoder()
        self._lock_file = _lock(config)
        self._conn = sqlite3.connect(config.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced at every commit, so a committed group survives a power cut;
        # with group commits that is one sync per interval, not per record.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        _upgrade(self._conn)
        self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', 1)")
        self._next_seq = self._meta("next_seq")
        self._due_id = self._max_piece_id()  # everything stored before a restart is due
        self.bound = Bound(config, clock=clock)
        self.bound.load(self._conn)
        self._stop = threading.Event()
        self._committer = threading.Thread(
            target=self._commit_loop, name="outbox-commit", daemon=True
        )
        self._committer.start()

    @classmethod
    def open(cls, config: OutboxConfig, gateway: str, **options: Any) -> Outbox:
        """Open (creating if needed) the outbox file; raises OutboxInUse if another has it.

        `options` are the constructor's: records are stored in `form` (`core.wire.form_of`:
        the form applies to counters and telemetry), in pieces of at most `piece_records` (the
        publisher's records per message, so that a piece fits a message whole)."""
        config.path.parent.mkdir(parents=True, exist_ok=True)
        return cls(config, gateway, **options)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- step 1: records in ----------------------------------------------------------------

    def add(self, record: Record) -> None:
        """Hand one record over; durable after the next group commit (or `flush()`)."""
        self.add_many((record,))

    def add_many(
        self, records: Iterable[Record], *, state: Mapping[str, Any] | None = None
    ) -> None:
        """Hand several records over at once; `state` (key -> JSON-able value, as `put_state`)
        is kept in the same group commit as them, so neither survives a crash without the other."""
        now = self._clock()
        states = {k: self._encoder.encode(v) for k, v in (state or {}).items()}
        with self._buf_lock:
            buf = self._buf
            for r in records:
                kind = KIND_OF[type(r)]
                pending = buf.get(kind)
                if pending is None:
                    buf[kind] = pending = []
                    self._buf_at[kind] = now
                pending.append(r)
                self._buf_n += 1
            self._state_buf.update(states)

    def put_state(self, key: str, value: Any) -> None:
        """Keep a JSON-able value under `key`; committed with the next group, like records."""
        body = self._encoder.encode(value)
        with self._buf_lock:
            self._state_buf[key] = body

    def get_state(self, key: str, default: Any = None) -> Any:
        """The value last put under `key` (as JSON types: a UUID comes back as a string)."""
        with self._buf_lock:
            body = self._state_buf.get(key)
        if body is None:
            with self._db_lock:
                row = self._conn.execute(
                    "SELECT value FROM agent_state WHERE key = ?", (key,)
                ).fetchone()
            if row is None:
                return default
            body = row[0]
        return msgspec.json.decode(body)

    def flush(self) -> None:
        """Commit everything handed over so far; returns when it is on disk."""
        self._commit()

    # -- step 2: messages ------------------------------------------------------------------

    def mark_due(self) -> None:
        """Make every record added so far eligible for `assemble()` (the flush tick)."""
        self._commit()
        with self._db_lock:
            self._due_id = self._max_piece_id()
            self._exhausted.clear()

    def assemble(
        self,
        n: int,
        *,
        max_records: int,
        max_bytes: int,
        skip_kinds: Collection[Kind] = (),
    ) -> list[StoredMessage]:
        """Make and store up to `n` new messages from due records, oldest records first.

        Kinds take turns (one message each, round robin, downtime and state first), so an
        hour of telemetry backlog never holds back a state change or a stop: those wait at most
        one message per other kind. Within a kind the order is the order records were added,
        which keeps every machine's records in order. Returns the messages in seq order, all
        committed to disk.
        """
        out: list[StoredMessage] = []
        with self._db_lock:
            empty = self._exhausted | set(skip_kinds)
            if n <= 0 or empty.issuperset(RECORD_KINDS):
                return out  # the common case between ticks: no transaction at all
            seq = self._next_seq
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                while len(out) < n:
                    kind = next((k for k in self._rotation if k not in empty), None)
                    if kind is None:
                        break
                    msg = self._assemble_one(kind, seq + len(out), max_records, max_bytes)
                    if msg is None:
                        empty.add(kind)
                        self._exhausted.add(kind)
                        continue
                    out.append(msg)
                    self._rotation.remove(kind)
                    self._rotation.append(kind)
                if out:
                    self._conn.execute(
                        "UPDATE meta SET value = ? WHERE key = 'next_seq'", (out[-1].seq + 1,)
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self.bound.load(self._conn)
                raise
        if out:
            self._next_seq = out[-1].seq + 1
        return out

    def _assemble_one(
        self, kind: Kind, seq: int, max_records: int, max_bytes: int
    ) -> StoredMessage | None:
        rows = self._conn.execute(
            "SELECT id, form, added_at, n, length(body) FROM piece WHERE kind = ? AND id <= ?"
            " ORDER BY id LIMIT ?",
            (kind.value, self._due_id, max_records),
        ).fetchall()
        if not rows:
            return None
        form = WireForm(rows[0][1])
        budget = max_bytes - PAYLOAD_OVERHEAD
        take = n = size = 0
        for _, piece_form, _, count, length in rows:
            if piece_form != form.value or n + count > max_records or size + length > budget:
                break
            take, n, size = take + 1, n + count, size + length + 1
        last = rows[max(take, 1) - 1][0]
        pieces = [body for (body,) in self._conn.execute(
            "SELECT body FROM piece WHERE kind = ? AND id <= ? ORDER BY id LIMIT ?",
            (kind.value, last, max(take, 1)),
        )]  # fmt: skip
        if take:
            self._conn.execute("DELETE FROM piece WHERE kind = ? AND id <= ?", (kind.value, last))
            stored = size - take
        else:  # the first piece alone is too large: split it
            pieces, n, stored = self._split(kind, form, last, pieces[0], max_records, budget)
        body = payload(kind, form, self.gateway, seq, datetime.now(UTC), pieces)
        oldest = min(r[2] for r in rows[: max(take, 1)])
        self._conn.execute(
            "INSERT INTO message VALUES (?, ?, ?, ?, ?)", (seq, kind.value, oldest, n, body)
        )
        self.bound.moved(kind, n, stored, len(body))
        return StoredMessage(seq, kind, body, n)

    def _split(
        self, kind: Kind, form: WireForm, piece_id: int, body: bytes, max_records: int,
        budget: int,
    ) -> tuple[list[bytes], int, int]:
        """Cut from the front of a stored piece the records one message can take; the rest
        stays stored under the same id. Returns ([the cut piece], its records, the stored
        bytes that left)."""
        records = decode_piece(kind, form, body)
        take = min(len(records), max_records)
        head = encode_piece(kind, form, records[:take])
        while take > 1 and len(head) > budget:  # shrink in proportion: sizes are even enough
            take = max(1, min(take - 1, take * budget // len(head)))
            head = encode_piece(kind, form, records[:take])
        rest = encode_piece(kind, form, records[take:]) if take < len(records) else b""
        if rest:
            self._conn.execute(
                "UPDATE piece SET n = ?, body = ? WHERE id = ?",
                (len(records) - take, rest, piece_id),
            )
        else:
            self._conn.execute("DELETE FROM piece WHERE id = ?", (piece_id,))
        return [head], take, len(body) - len(rest)

    def stored(
        self, *, exclude: Collection[int] = (), skip_kinds: Collection[Kind] = (), limit: int
    ) -> list[StoredMessage]:
        """Stored messages not yet acknowledged, in seq order, up to `limit`.

        `exclude` are seqs the caller has in flight; acks not yet committed are left out here.
        """
        with self._buf_lock:
            acked = set(self._acked)
        skip = [k.value for k in skip_kinds]
        out: list[StoredMessage] = []
        with self._db_lock:
            for seq, kind in self._conn.execute("SELECT seq, kind FROM message ORDER BY seq"):
                if seq in exclude or seq in acked or kind in skip:
                    continue
                payload, n = self._conn.execute(
                    "SELECT payload, n_records FROM message WHERE seq = ?", (seq,)
                ).fetchone()
                out.append(StoredMessage(seq, Kind(kind), payload, n))
                if len(out) >= limit:
                    break
        return out

    # -- step 3: acknowledged messages out ---------------------------------------------------

    def ack(self, seq: int) -> None:
        """The broker acknowledged `seq`: delete it (with the next group commit)."""
        with self._buf_lock:
            self._ack_buf.append(seq)
            self._acked.add(seq)

    # -- metrics -------------------------------------------------------------------------------

    def depth(self) -> OutboxDepth:
        """Pending records (stored and not yet committed), stored messages, bytes, oldest age."""
        with self._buf_lock:
            buf_n = self._buf_n
            buf_oldest = min(self._buf_at.values(), default=None)
        with self._db_lock:
            oldest = self.bound.oldest(self._conn)
        if oldest is None:
            oldest = buf_oldest
        return OutboxDepth(
            records=self.bound.records + buf_n,
            messages=self.bound.messages,
            bytes=self.bound.bytes,
            oldest_age_s=None if oldest is None else max(0.0, self._clock() - oldest),
        )

    @property
    def dropped(self) -> dict[Kind, int]:
        """Records dropped at the bound since this process opened the outbox, by kind."""
        return dict(self.bound.dropped)

    @property
    def next_seq(self) -> int:
        """The seq the next assembled message will carry."""
        return self._next_seq

    # -- the group commit ----------------------------------------------------------------------

    def _commit_loop(self) -> None:
        interval = self.config.commit_interval_ms / 1000
        while not self._stop.wait(interval):
            try:
                self._commit()
            except Exception:
                # Kept in memory and retried next interval; a full disk must be loud, not fatal.
                # So must a record that cannot be encoded (records are encoded here, in groups):
                # the thread that commits everything else must not end on it.
                log.exception(
                    "outbox commit failed; will retry", extra={"path": str(self.config.path)}
                )

    def _commit(self) -> None:
        with self._db_lock:
            with self._buf_lock:
                buf, self._buf = self._buf, {}
                buf_at, self._buf_at = self._buf_at, {}
                buf_n, self._buf_n = self._buf_n, 0
                states, self._state_buf = self._state_buf, {}
                acks, self._ack_buf = self._ack_buf, []
            if not (buf or states or acks or self.bound.check_due()):
                return
            try:
                rows = self._pieces(buf, buf_at)
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT INTO piece (kind, form, added_at, n, body) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._conn.executemany(
                    "INSERT OR REPLACE INTO agent_state VALUES (?, ?)", states.items()
                )
                for seq in acks:
                    gone = self._conn.execute(
                        "DELETE FROM message WHERE seq = ? RETURNING length(payload)", (seq,)
                    ).fetchone()
                    if gone:
                        self.bound.acked(gone[0])
                self.bound.added(rows)
                self.bound.enforce(self._conn)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self.bound.load(self._conn)
                with self._buf_lock:  # nothing handed over is lost to a failed commit
                    for kind, records in buf.items():
                        self._buf[kind] = records + self._buf.get(kind, [])
                        self._buf_at[kind] = buf_at[kind]
                    self._buf_n += buf_n
                    self._state_buf = {**states, **self._state_buf}
                    self._ack_buf[:0] = acks
                raise
        with self._buf_lock:
            self._acked.difference_update(acks)

    def _pieces(
        self, buf: Mapping[Kind, list[Record]], buf_at: Mapping[Kind, float]
    ) -> list[tuple[str, str, float, int, bytes]]:
        """The rows of the `piece` table for records handed over, in pieces of at most
        `piece_records`, in the order they came."""
        rows = []
        size = self._piece_records
        for kind, records in buf.items():
            form = form_of(kind, self.form)
            for i in range(0, len(records), size):
                part = records[i : i + size]
                rows.append((kind.value, form.value, buf_at[kind], len(part),
                             encode_piece(kind, form, part)))  # fmt: skip
        return rows

    def close(self) -> None:
        """Commit what is pending, stop the commit thread and close the file."""
        self._stop.set()
        self._committer.join()
        self._commit()
        with self._db_lock:
            self._conn.close()
        self._lock_file.close()

    def _meta(self, key: str) -> int:
        return self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def _max_piece_id(self) -> int:
        return self._conn.execute("SELECT coalesce(max(id), 0) FROM piece").fetchone()[0]


def _upgrade(conn: sqlite3.Connection) -> None:
    """Records left by an agent that stored one row per record (table `record`, bodies in the
    records form) become pieces, in order, so that an upgrade loses nothing."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'record'").fetchone():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        open_pieces: dict[str, tuple[float, list[bytes]]] = {}
        insert = "INSERT INTO piece (kind, form, added_at, n, body) VALUES (?, ?, ?, ?, ?)"

        def store(kind: str) -> None:
            added_at, bodies = open_pieces.pop(kind)
            conn.execute(insert, (kind, WireForm.RECORDS.value, added_at, len(bodies),
                                  b",".join(bodies)))  # fmt: skip

        for kind, added_at, body in conn.execute(
            "SELECT kind, added_at, body FROM record ORDER BY id"
        ):
            open_pieces.setdefault(kind, (added_at, []))[1].append(body)
            if len(open_pieces[kind][1]) >= _UPGRADE_PIECE:
                store(kind)
        for kind in list(open_pieces):
            store(kind)
        conn.execute("DROP TABLE record")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


_UPGRADE_PIECE = 500


def _lock(config: OutboxConfig) -> Any:
    lock_file = open(f"{config.path}.lock", "a+b")  # noqa: SIM115  (held open while in use)
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise OutboxInUse(f"outbox {config.path} is in use by another process") from None
    return lock_file
