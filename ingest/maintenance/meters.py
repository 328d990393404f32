"""Meters from landed rows (the tenant views), never from messages in flight: a replayed
message adds no row, so it adds nothing to a meter; a restarted engine reads the same rows.

- **Runtime hours**: time in `running` between `since` and the machine's horizon, from the
  state history (each row holds until the next). `offline` ends running time and counts as
  nothing. The last state holds only up to the horizon: the latest timestamp, at or before
  now, that the machine has landed in any series (state, counter, telemetry), never the wall
  clock, so a gateway that went silent adds no hours.
- **Counter increase**: the ingest lands running totals (the edge unwraps the PLC register's
  rollover, edge_agent/derivation/counters.py). A total that goes DOWN is a reset (the edge
  lost its total, a counter replaced): the increase across it is the new value, what was
  counted since the reset. The last row at or before `since` is the base; without one, the
  first row after it. Rows after now are not counted yet.

Every reading an evaluation needs is read by ONE statement (`Meters.prefetch`): a round trip
per machine and meter was most of the engine's cost (mes bench maintenance). The horizon is
looked up only for a machine whose last state is `running` (the only case where it changes a
sum), and then only among rows after that state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import psycopg

# The latest row of one machine in a view after its last state row, up to now.
_LATEST_AFTER = """(SELECT max(v.ts) FROM mes.{view} v WHERE v.machine_id = l.machine_id
                    AND v.ts > l.ts AND v.ts <= %(now)s)"""

_READINGS = f"""
WITH req AS (
    SELECT * FROM unnest(%(machines)s::uuid[], %(kinds)s::text[], %(tags)s::text[],
                         %(sinces)s::timestamptz[]) WITH ORDINALITY
                  AS r(machine_id, kind, tag, since, i)
),
last_state AS MATERIALIZED (
    SELECT m.machine_id, s.ts, s.state
    FROM (SELECT DISTINCT machine_id FROM req WHERE kind = 'runtime_hours') m
    LEFT JOIN LATERAL (SELECT ts, state FROM mes.v_machine_status_history
                       WHERE machine_id = m.machine_id AND ts <= %(now)s
                       ORDER BY ts DESC LIMIT 1) s ON true
),
horizon AS MATERIALIZED (
    SELECT l.machine_id, CASE WHEN l.state = 'running' THEN greatest(
               l.ts, {_LATEST_AFTER.format(view='v_machine_counter')},
               {_LATEST_AFTER.format(view='v_machine_telemetry')})
           ELSE l.ts END AS until
    FROM last_state l
)
SELECT r.i, coalesce(rt.hours, ct.increase, 0)
FROM req r
LEFT JOIN horizon h ON h.machine_id = r.machine_id
LEFT JOIN LATERAL (
    SELECT sum(extract(epoch FROM least(coalesce(next_ts, h.until), h.until)
                                   - greatest(ts, r.since))) / 3600 AS hours
    FROM (SELECT ts, state, lead(ts) OVER (ORDER BY ts) AS next_ts
          FROM mes.v_machine_status_history
          WHERE r.kind = 'runtime_hours' AND h.until > r.since
            AND machine_id = r.machine_id AND ts <= h.until
            AND ts >= coalesce((SELECT ts FROM mes.v_machine_status_history
                                WHERE machine_id = r.machine_id AND ts <= r.since
                                ORDER BY ts DESC LIMIT 1), r.since)) AS s
    WHERE state = 'running' AND coalesce(next_ts, h.until) > r.since
) rt ON true
LEFT JOIN LATERAL (
    SELECT sum(CASE WHEN value >= prev THEN value - prev ELSE value END) AS increase
    FROM (SELECT value, lag(value) OVER (ORDER BY ts) AS prev
          FROM mes.v_machine_counter
          WHERE r.kind = 'cycles' AND machine_id = r.machine_id AND tag = r.tag
            AND ts <= %(now)s
            AND ts >= coalesce((SELECT ts FROM mes.v_machine_counter
                                WHERE machine_id = r.machine_id AND tag = r.tag
                                  AND ts <= r.since ORDER BY ts DESC LIMIT 1), r.since)) AS c
    WHERE prev IS NOT NULL
) ct ON true
"""

Key = tuple[uuid.UUID, str, str | None, datetime]


class Meters:
    """Meter readings of one transaction's machines: `prefetch` what an evaluation needs in
    one statement, then `reading` each (a reading not prefetched is read on its own)."""

    def __init__(self, conn: psycopg.Connection, now: datetime) -> None:
        self._conn, self._now = conn, now
        self._cache: dict[Key, float] = {}

    def prefetch(self, keys: Iterable[Key]) -> None:
        """Read every (machine, kind, tag, since) of `keys` not read yet, in one statement."""
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if not todo:
            return
        machines, kinds, tags, sinces = (list(col) for col in zip(*todo, strict=True))
        rows = self._conn.execute(_READINGS, {
            "machines": machines, "kinds": kinds, "tags": tags, "sinces": sinces,
            "now": self._now}).fetchall()
        for i, value in rows:
            self._cache[todo[i - 1]] = float(value)

    def reading(self, machine: uuid.UUID, kind: str, tag: str | None, since: datetime) -> float:
        """Runtime hours (`kind` runtime_hours) or the increase of counter `tag` (cycles) of
        `machine` from `since` to its horizon."""
        key = (machine, kind, tag, since)
        if key not in self._cache:
            self.prefetch([key])
        return self._cache[key]
