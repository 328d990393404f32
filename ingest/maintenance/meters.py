"""Meters from landed rows (the tenant views), never from messages in flight: a replayed
message adds no row, so it adds nothing to a meter; a restarted engine reads the same rows.

- **Runtime hours**: time in `running` between `since` and the machine's horizon, from the
  state history (each row holds until the next; the state at `since` is the last row at or
  before it). `offline` ends running time and counts as nothing. The last state holds only up
  to the horizon: the latest timestamp, at or before now, that the machine has landed in any
  series (state, counter, telemetry), never the wall clock, so a gateway that went silent adds
  no hours.
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
between the evaluations after commits and drops them at every sweep, which reads from scratch:
a row that lands late, stamped before a checkpoint, is counted from the next sweep on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime

import psycopg

# The latest row of one machine in a view after `after`, up to now (only the rows after it
# are read: index on (machine_id, tag, ts)).
_LATEST_AFTER = """(SELECT max(v.ts) FROM mes.{view} v WHERE v.machine_id = r.machine_id
                    AND v.ts > {after} AND v.ts <= %(now)s)"""
_AFTER = "greatest(l.ts, b.start)"  # l.ts is after b.start when there is one

_READINGS = f"""
WITH req AS (
    SELECT * FROM unnest(%(machines)s::uuid[], %(kinds)s::text[], %(tags)s::text[],
                         %(sinces)s::timestamptz[], %(ck_at)s::timestamptz[],
                         %(ck_value)s::float8[], %(ck_last)s::float8[], %(ck_state)s::text[])
                  WITH ORDINALITY
                  AS r(machine_id, kind, tag, since, ck_at, ck_value, ck_last, ck_state, i)
)
-- A new checkpoint only where the rows reach past the start: one placed beyond the rows
-- landed so far would miss those that land next with earlier timestamps.
SELECT r.i, coalesce(r.ck_value, 0) + coalesce(rt.hours, ct.increase, 0),
       coalesce(CASE WHEN h.until > b.start THEN h.until END,
                CASE WHEN ct.last_ts >= r.since THEN ct.last_ts END),
       coalesce(l.state, b.state0), ct.last_value
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
    SELECT CASE WHEN coalesce(l.state, b.state0) = 'running'
                THEN greatest(b.start, l.ts,
                              {_LATEST_AFTER.format(view='v_machine_counter', after=_AFTER)},
                              {_LATEST_AFTER.format(view='v_machine_telemetry', after=_AFTER)})
                ELSE greatest(b.start, l.ts) END AS until
    WHERE r.kind = 'runtime_hours'
) h ON true
LEFT JOIN LATERAL (
    SELECT sum(extract(epoch FROM coalesce(next_ts, h.until) - ts)) / 3600 AS hours
    FROM (SELECT ts, state, lead(ts) OVER (ORDER BY ts) AS next_ts
          FROM (SELECT b.start AS ts, b.state0 AS state
                UNION ALL
                SELECT ts, state FROM mes.v_machine_status_history
                WHERE machine_id = r.machine_id AND ts > b.start AND ts <= h.until) AS x
          ) AS s
    WHERE r.kind = 'runtime_hours' AND state = 'running'
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
    SELECT sum(CASE WHEN value >= prev THEN value - prev ELSE value END)
               FILTER (WHERE prev IS NOT NULL) AS increase,
           max(ts) AS last_ts, (array_agg(value ORDER BY ts DESC))[1] AS last_value
    FROM (SELECT ts, value, lag(value) OVER (ORDER BY ts) AS prev
          FROM (SELECT r.ck_at AS ts, r.ck_last AS value WHERE r.ck_at IS NOT NULL
                UNION ALL
                SELECT ts, value FROM mes.v_machine_counter
                WHERE machine_id = r.machine_id AND tag = r.tag AND ts > cb.lo
                  AND ts <= %(now)s) AS x
          ) AS c
    WHERE r.kind = 'cycles'
) ct ON true
"""

Key = tuple[uuid.UUID, str, str | None, datetime]


@dataclass(frozen=True)
class Checkpoint:
    """A reading `value` from `since` up to `at`, with what holds at `at`: the state (runtime)
    or the counter's value (cycles)."""

    at: datetime
    value: float
    state: str | None = None
    last: float | None = None


class Meters:
    """Meter readings of one transaction's machines: `prefetch` what an evaluation needs in
    one statement, then `reading` each (a reading not prefetched is read on its own).
    `checkpoints` (kept by the caller between evaluations, or None) are where readings start
    from when they can, and receive the new ones."""

    def __init__(self, conn: psycopg.Connection, now: datetime,
                 checkpoints: MutableMapping[Key, Checkpoint] | None = None) -> None:
        self._conn, self._now = conn, now
        self._cache: dict[Key, float] = {}
        self._checkpoints = checkpoints

    def prefetch(self, keys: Iterable[Key]) -> None:
        """Read every (machine, kind, tag, since) of `keys` not read yet, in one statement."""
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if not todo:
            return
        known = self._checkpoints or {}
        cks = [known.get(k) for k in todo]
        params = {"now": self._now}
        for name, column in zip(("machines", "kinds", "tags", "sinces"), zip(*todo, strict=True),
                                strict=True):
            params[name] = list(column)
        for name in ("at", "value", "last", "state"):
            params[f"ck_{name}"] = [getattr(c, name) if c else None for c in cks]
        for i, value, at, state, last in self._conn.execute(_READINGS, params).fetchall():
            key = todo[i - 1]
            self._cache[key] = float(value)
            if self._checkpoints is not None and at is not None:
                self._checkpoints[key] = Checkpoint(at, float(value), state, last)

    def reading(self, machine: uuid.UUID, kind: str, tag: str | None, since: datetime) -> float:
        """Runtime hours (`kind` runtime_hours) or the increase of counter `tag` (cycles) of
        `machine` from `since` to its horizon."""
        key = (machine, kind, tag, since)
        if key not in self._cache:
            self.prefetch([key])
        return self._cache[key]
