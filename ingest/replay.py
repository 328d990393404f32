"""Run dead letters through validation and the writer again (after, say, a machine was
registered). A letter is replayed when it now validates and commits; a letter whose stored
payload was cut at the bound cannot be replayed.

`choose` picks the waiting letters an operator named and says why each name matched nothing
(an unknown id, a letter already replayed, a reason no waiting letter has, or no reason at all).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import psycopg
from psycopg_pool import ConnectionPool

from core.wire import DeadLetterReason
from ingest.batcher import InFlight, TenantBatch
from ingest.registry import Registry
from ingest.settings import IngestSettings
from ingest.validator import Accepted, NotOurs, Rejected, Validator
from ingest.writer import BatchRefused, Retrier, Writer

Letter = tuple[int, str, bytes, int]  # id, topic, payload, payload_size

_WAITING = ("SELECT id, topic, payload, payload_size FROM mes.dead_letters "
            "WHERE replayed_at IS NULL AND {} ORDER BY id")


def choose(conn: psycopg.Connection, ids: Sequence[int] | None, reason: str | None
           ) -> tuple[list[Letter], list[str]]:
    """(waiting letters with one of `ids`, or else with `reason`; why the rest matched none)."""
    if ids:
        letters = conn.execute(_WAITING.format("id = ANY(%s)"), (list(ids),)).fetchall()
        found = dict(conn.execute("SELECT id, replayed_at FROM mes.dead_letters "
                                  "WHERE id = ANY(%s)", (list(ids),)).fetchall())
        notes = []
        for i in dict.fromkeys(ids):
            if i not in found:
                notes.append(f"#{i}: no such dead letter")
            elif found[i] is not None:
                notes.append(f"#{i}: already replayed at "
                             f"{found[i].isoformat(timespec='seconds')}")
        return letters, notes
    letters = conn.execute(_WAITING.format("reason = %s"), (reason,)).fetchall()
    if letters:
        return letters, []
    row = conn.execute("SELECT count(*), max(replayed_at) FROM mes.dead_letters "
                       "WHERE reason = %s", (reason,)).fetchone()
    replayed, last = row if row else (0, None)
    if replayed:
        return [], [f"no dead letter with reason {reason} is waiting: {replayed} already "
                    f"replayed, the last at {last.isoformat(timespec='seconds')} "
                    "(`list --replayed` shows them)"]
    if reason not in {r.value for r in DeadLetterReason}:
        return [], [f"{reason!r} is not a dead-letter reason; the reasons are: "
                    + ", ".join(DeadLetterReason)]
    return [], [f"no dead letter has reason {reason}"]


def replay(settings: IngestSettings, letters: Sequence[Letter]) -> list[tuple[int, bool, str]]:
    """[(id, replayed?, what happened)] for (id, topic, payload, payload_size) letters."""
    stop = threading.Event()
    # A replay is run by hand: it waits out a short hiccup, not an outage.
    retry = Retrier(min(settings.ingest.retry_min_s, 2.0), 2.0, stop)
    with ConnectionPool(settings.database.application_url(), min_size=1, max_size=2,
                        kwargs={"autocommit": True}, name="replay") as pool:
        validator = Validator(Registry(pool, ttl_s=0.001, negative_ttl_s=0), settings.ingest)
        writer = Writer(pool, retry)
        out = []
        for id_, topic, payload, size in letters:
            if len(payload) < size:
                out.append((id_, False, f"payload was cut at {len(payload)} of {size} bytes"))
                continue
            result = validator.check(topic, bytes(payload))
            if isinstance(result, Rejected):
                out.append((id_, False, f"{result.reason}: {result.detail}"))
                continue
            if isinstance(result, NotOurs):
                out.append((id_, True, f"a topic of the {result.owner}, nothing to write"))
                continue
            if not isinstance(result, Accepted):
                out.append((id_, True, "status message, nothing to write"))
                continue
            batch = TenantBatch(result.tenant)
            batch.rows[result.staging_kind] = result.rows
            batch.messages.append(InFlight(0, 0, len(payload), 0.0, accepted=result))
            try:
                written = writer.write([batch])[0]
            except BatchRefused as e:
                out.append((id_, False, str(e)))
                continue
            out.append((id_, True, f"{sum(written.values())} new row(s) of "
                                   f"{len(result.rows)}"))
        return out
