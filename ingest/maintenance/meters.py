"""Meters from landed rows (the tenant views), never from messages in flight: a replayed
message adds no row, so it adds nothing to a meter; a restarted engine reads the same rows.

- **Runtime hours**: time in `running` between `since` and the machine's horizon, from the
  state history (each row holds until the next; the state at `since` is the last row at or
  before it). `offline` ends running time and counts as nothing. The last state holds only up
  to the horizon: the latest timestamp, at or before now, that the machine has landed in any
  series (state, counter, telemetry; mes.machine_latest_row(), sql/0015), never the wall
  clock, so a gateway that went silent adds no hours.
- **Counter increase**: the ingest lands running totals (the edge unwraps the PLC register's
  rollover, edge_agent/derivation/counters.py). A total that goes DOWN is a reset (the edge
  lost its total, a counter replaced): the increase across it is the new value, what was
  counted since the reset. The last row at or before `since` is the base; without one, the
  first row after it. Rows after now are not counted yet.

Cost. Every reading an evaluation needs is read by ONE statement (`Meters.prefetch`; a round
trip per machine and meter was most of the engine's cost, mes bench maintenance). A reading
can start from a **checkpoint** (`Checkpoint`: the reading up to a time, and the state or
counter value there, from an earlier read of the same rows), so that it reads only the rows
after it instead of the whole history since `since`. The engine keeps checkpoints in memory
between the evaluations after commits, placed where the rows end; sweeps start from the
checkpoints stored in the database instead (placed as settling.py says, so that a row landing
late is still counted) and store new ones; each sweep replaces the ones in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ingest.maintenance.settling import Settling

_READINGS = """
WITH req AS (
    SELECT * FROM unnest(%(machines)s::uuid[], %(kinds)s::text[], %(tags)s::text[],
                         %(sinces)s::timestamptz[], %(ck_at)s::timestamptz[],
                         %(ck_value)s::float8[], %(ck_last)s::float8[], %(ck_state)s::text[])
                  WITH ORDINALITY
                  AS r(machine_id, kind, tag, since, ck_at, ck_value, ck_last, ck_state, i)
)
-- Two new checkpoints: where the rows end (fresh: for the next evaluation in this process),
-- and at or before %(cut)s (settled: to store, settling.py). Either only where the rows reach
-- past the start: one placed beyond the rows landed so far would miss those that land next
-- with earlier timestamps.
SELECT r.i, coalesce(r.ck_value, 0) + coalesce(rt.hours, ct.increase, 0),
       coalesce(CASE WHEN h.until > b.start THEN h.until END,
                CASE WHEN ct.last_ts >= r.since THEN ct.last_ts END),
       coalesce(l.state, b.state0), ct.last_value,
       coalesce(CASE WHEN h.settle > b.start THEN h.settle END,
                CASE WHEN ct.ck_ts >= r.since THEN ct.ck_ts END),
       coalesce(r.ck_value, 0) + coalesce(rt.ck_hours, ct.ck_increase, 0),
       rt.ck_state, ct.ck_last
FROM req r
-- runtime: where the reading starts (checkpoint or since) and the state there
LEFT JOIN LATERAL (
    SELECT coalesce(r.ck_at, r.since) AS start,
           CASE WHEN r.ck_at IS NOT NULL THEN r.ck_state
                ELSE (SELECT state FROM mes.v_machine_status_history
                      WHERE machine_id = r.machine_id AND ts <= r.since
                      ORDER BY ts DESC LIMIT 1) END AS state0
    WHERE r.kind = 'runtime_hours'
) b ON true
LEFT JOIN LATERAL (
    SELECT ts, state FROM mes.v_machine_status_history
    WHERE r.kind = 'runtime_hours' AND machine_id = r.machine_id AND ts > b.start
      AND ts <= %(now)s
    ORDER BY ts DESC LIMIT 1
) l ON true
LEFT JOIN LATERAL (
    SELECT u.until, CASE WHEN %(cut)s::timestamptz IS NOT NULL
                         THEN least(u.until, %(cut)s) END AS settle
    FROM (SELECT CASE WHEN coalesce(l.state, b.state0) = 'running'
                      THEN greatest(b.start, l.ts, mes.machine_latest_row(
                                        r.machine_id, greatest(l.ts, b.start), %(now)s))
                      ELSE greatest(b.start, l.ts) END AS until
          OFFSET 0) AS u  -- not inlined: `until` is read twice
    WHERE r.kind = 'runtime_hours'
) h ON true
LEFT JOIN LATERAL (
    SELECT sum(extract(epoch FROM coalesce(next_ts, h.until) - ts))
               FILTER (WHERE state = 'running') / 3600 AS hours,
           sum(extract(epoch FROM least(coalesce(next_ts, h.until), h.settle) - ts))
               FILTER (WHERE state = 'running' AND ts < h.settle) / 3600 AS ck_hours,
           (array_agg(state ORDER BY ts DESC) FILTER (WHERE ts <= h.settle))[1] AS ck_state
    FROM (SELECT ts, state, lead(ts) OVER (ORDER BY ts) AS next_ts
          FROM (SELECT b.start AS ts, b.state0 AS state
                UNION ALL
                SELECT ts, state FROM mes.v_machine_status_history
                WHERE machine_id = r.machine_id AND ts > b.start AND ts <= h.until) AS x
          ) AS s
    WHERE r.kind = 'runtime_hours'
) rt ON true
-- counters: the rows after the checkpoint (its value as the first), or from the base row
LEFT JOIN LATERAL (
    SELECT CASE WHEN r.ck_at IS NOT NULL THEN r.ck_at
                ELSE coalesce((SELECT ts FROM mes.v_machine_counter
                               WHERE machine_id = r.machine_id AND tag = r.tag
                                 AND ts <= r.since ORDER BY ts DESC LIMIT 1), r.since)
                     - interval '1 microsecond' END AS lo
    WHERE r.kind = 'cycles'
) cb ON true
LEFT JOIN LATERAL (
    SELECT sum(step) AS increase, max(ts) AS last_ts,
           (array_agg(value ORDER BY ts DESC))[1] AS last_value,
           sum(step) FILTER (WHERE ts <= %(cut)s) AS ck_increase,
           max(ts) FILTER (WHERE ts <= %(cut)s) AS ck_ts,
           (array_agg(value ORDER BY ts DESC) FILTER (WHERE ts <= %(cut)s))[1] AS ck_last
    FROM (SELECT ts, value,
                 CASE WHEN prev IS NULL THEN NULL WHEN value >= prev THEN value - prev
                      ELSE value END AS step
          FROM (SELECT ts, value, lag(value) OVER (ORDER BY ts) AS prev
                FROM (SELECT r.ck_at AS ts, r.ck_last AS value WHERE r.ck_at IS NOT NULL
                      UNION ALL
                      SELECT ts, value FROM mes.v_machine_counter
                      WHERE machine_id = r.machine_id AND tag = r.tag AND ts > cb.lo
                        AND ts <= %(now)s) AS x) AS y
          ) AS c
    WHERE r.kind = 'cycles'
) ct ON true
"""

_STORED = """
SELECT k.i, c.at, c.value, c.state, c.last_value, c.rebuilt_at
FROM unnest(%(machines)s::uuid[], %(kinds)s::text[], %(tags)s::text[], %(sinces)s::timestamptz[])
     WITH ORDINALITY AS k(machine_id, kind, tag, since, i)
JOIN mes.pm_meter_checkpoints c ON c.machine_id = k.machine_id AND c.meter_kind = k.kind
     AND c.tag = k.tag AND c.since = k.since
WHERE c.rebuilt_at > %(stale)s AND c.at <= %(now)s  -- a clock set back: not beyond now
"""

# Sorted, so that two engines storing overlapping sets lock the rows in the same order.
_STORE = """
INSERT INTO mes.pm_meter_checkpoints AS c (organization_id, plant_id, machine_id, meter_kind,
    tag, since, at, value, state, last_value, rebuilt_at)
SELECT m.organization_id, m.plant_id, k.*
FROM unnest(%(machines)s::uuid[], %(kinds)s::text[], %(tags)s::text[], %(sinces)s::timestamptz[],
            %(ats)s::timestamptz[], %(values)s::float8[], %(states)s::text[],
            %(lasts)s::float8[], %(rebuilt)s::timestamptz[])
     AS k(machine_id, kind, tag, since, at, value, state, last_value, rebuilt_at)
JOIN mes.machines m ON m.id = k.machine_id
ORDER BY k.machine_id, k.kind, k.tag, k.since
ON CONFLICT (machine_id, meter_kind, tag, since) DO UPDATE
SET at = excluded.at, value = excluded.value, state = excluded.state,
    last_value = excluded.last_value, rebuilt_at = excluded.rebuilt_at
WHERE (excluded.rebuilt_at, excluded.at) > (c.rebuilt_at, c.at)
"""

Key = tuple[uuid.UUID, str, str | None, datetime]


@dataclass(frozen=True)
class Checkpoint:
    """A reading `value` from `since` up to `at`, with what holds at `at`: the state (runtime)
    or the counter's value (cycles); `rebuilt_at`: when its chain was last read from scratch
    (stored checkpoints only)."""

    at: datetime
    value: float
    state: str | None = None
    last: float | None = None
    rebuilt_at: datetime | None = None


class Meters:
    """Meter readings of one transaction's machines: `prefetch` what an evaluation needs in
    one statement, then `reading` each (a reading not prefetched is read on its own).
    `checkpoints` (kept by the caller between evaluations, or None) are where readings start
    from when they can, and receive the new ones. With `settling`, readings start from the
    stored checkpoints instead (mes.pm_meter_checkpoints, or from scratch where there is none
    or its chain is due a rebuild) and store new ones as settling.py says."""

    def __init__(self, conn: psycopg.Connection, now: datetime,
                 checkpoints: MutableMapping[Key, Checkpoint] | None = None,
                 settling: Settling | None = None) -> None:
        self._conn, self._now = conn, now
        self._cache: dict[Key, float] = {}
        self._checkpoints = checkpoints
        self._settling = settling

    def prefetch(self, keys: Iterable[Key]) -> None:
        """Read every (machine, kind, tag, since) of `keys` not read yet, in one statement."""
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if not todo:
            return
        params: dict[str, Any] = {"now": self._now, **_columns(todo)}
        if self._settling:
            cks = self._stored(params)
            params["cut"] = self._settling.cut(self._now)
        else:
            known = self._checkpoints or {}
            cks = [known.get(k) for k in todo]
            params["cut"] = None
        for name in ("at", "value", "last", "state"):
            params[f"ck_{name}"] = [getattr(c, name) if c else None for c in cks]
        settled: dict[Key, Checkpoint] = {}
        for i, value, at, state, last, s_at, s_value, s_state, s_last in self._conn.execute(
                _READINGS, params).fetchall():
            key, start = todo[i - 1], cks[i - 1]
            self._cache[key] = float(value)
            if self._checkpoints is not None and at is not None:
                self._checkpoints[key] = Checkpoint(at, float(value), state, last)
            if (self._settling and s_at is not None
                    and self._settling.advances(start.at if start else None, s_at)):
                settled[key] = Checkpoint(s_at, float(s_value), s_state, s_last,
                                          start.rebuilt_at if start else self._now)
        if settled:
            self._store(settled)

    def reading(self, machine: uuid.UUID, kind: str, tag: str | None, since: datetime) -> float:
        """Runtime hours (`kind` runtime_hours) or the increase of counter `tag` (cycles) of
        `machine` from `since` to its horizon."""
        key = (machine, kind, tag, since)
        if key not in self._cache:
            self.prefetch([key])
        return self._cache[key]

    def _stored(self, params: dict[str, Any]) -> list[Checkpoint | None]:
        assert self._settling is not None
        cks: list[Checkpoint | None] = [None] * len(params["machines"])
        stale = self._now - self._settling.recompute
        for i, at, value, state, last, rebuilt in self._conn.execute(
                _STORED, {**params, "stale": stale}):
            cks[i - 1] = Checkpoint(at, value, state, last, rebuilt)
        return cks

    def _store(self, settled: dict[Key, Checkpoint]) -> None:
        params: dict[str, Any] = _columns(list(settled))
        for name, attr in (("ats", "at"), ("values", "value"), ("states", "state"),
                           ("lasts", "last"), ("rebuilt", "rebuilt_at")):
            params[name] = [getattr(c, attr) for c in settled.values()]
        self._conn.execute(_STORE, params)


def _columns(keys: list[Key]) -> dict[str, list[Any]]:
    """Keys as the statements' arrays (a runtime meter's tag is '' where it is stored)."""
    machines, kinds, tags, sinces = (list(c) for c in zip(*keys, strict=True))
    return {"machines": machines, "kinds": kinds, "tags": [t or "" for t in tags],
            "sinces": sinces}

