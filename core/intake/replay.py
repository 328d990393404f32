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

from core.intake.registry import Registry
from core.intake.validator import Accepted, Limits, NotOurs, Rejected, Validator
from core.intake.writer import BatchRefused, Retrier, StagedRows, Writer
from core.wire import DeadLetterReason

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


def replay(app_url: str, limits: Limits, letters: Sequence[Letter]
           ) -> list[tuple[int, bool, str]]:
    """[(id, replayed?, what happened)] for (id, topic, payload, payload_size) letters, checked
    against `limits` and written as the application role (`app_url`). Marking the replayed
    ones is the caller's: the operator's command as the owner, the API through sql/0014."""
    stop = threading.Event()
    # A replay is asked for by a person: it waits out a short hiccup, not an outage.
    retry = Retrier(0.2, 2.0, stop)
    with ConnectionPool(app_url, min_size=1, max_size=2,
                        kwargs={"autocommit": True}, name="replay") as pool:
        validator = Validator(Registry(pool, ttl_s=0.001, negative_ttl_s=0), limits)
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
            try:
                staged = StagedRows(result.tenant, {result.staging_kind: result.rows})
                written = writer.write([staged])[0]
            except BatchRefused as e:
                out.append((id_, False, str(e)))
                continue
            out.append((id_, True, f"{sum(written.values())} new row(s) of "
                                   f"{len(result.rows)}"))
        return out
