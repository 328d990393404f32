"""Meters from landed rows (the tenant views), never from messages in flight: a replayed
message adds no row, so it adds nothing to a meter; a restarted engine reads the same rows.

- **Runtime hours**: time in `running` between `since` and the machine's horizon, from the
  state history (each row holds until the next). `offline` ends running time and counts as
  nothing. The last state holds only up to the horizon: the latest timestamp the machine has
  landed in any series (state, counter, telemetry), never the wall clock, so a gateway that
  went silent adds no hours.
- **Counter increase**: the ingest lands running totals (the edge unwraps the PLC register's
  rollover, edge_agent/derivation/counters.py). A total that goes DOWN is a reset (the edge
  lost its total, a counter replaced): the increase across it is the new value, what was
  counted since the reset. The first row at or before `since` is the base; without one, the
  first row after it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import psycopg

_HORIZON = """
SELECT greatest(
    (SELECT max(ts) FROM mes.v_machine_status_history WHERE machine_id = %(m)s),
    (SELECT max(ts) FROM mes.v_machine_counter WHERE machine_id = %(m)s),
    (SELECT max(ts) FROM mes.v_machine_telemetry WHERE machine_id = %(m)s))
"""

_RUNTIME = """
WITH rows AS (
    SELECT ts, state, lead(ts) OVER (ORDER BY ts) AS next_ts
    FROM mes.v_machine_status_history
    WHERE machine_id = %(m)s AND ts <= %(until)s
      AND ts >= coalesce((SELECT max(ts) FROM mes.v_machine_status_history
                          WHERE machine_id = %(m)s AND ts <= %(since)s), %(since)s)
)
SELECT coalesce(sum(extract(epoch FROM
           least(coalesce(next_ts, %(until)s), %(until)s) - greatest(ts, %(since)s))), 0) / 3600
FROM rows
WHERE state = 'running' AND coalesce(next_ts, %(until)s) > %(since)s
"""

_COUNTER = """
SELECT coalesce(sum(CASE WHEN value >= prev THEN value - prev ELSE value END), 0)
FROM (SELECT value, lag(value) OVER (ORDER BY ts) AS prev
      FROM mes.v_machine_counter
      WHERE machine_id = %(m)s AND tag = %(tag)s AND ts <= %(until)s
        AND ts >= coalesce((SELECT max(ts) FROM mes.v_machine_counter
                            WHERE machine_id = %(m)s AND tag = %(tag)s AND ts <= %(since)s),
                           %(since)s)) AS r
WHERE prev IS NOT NULL
"""


class Meters:
    """Meter readings of one transaction's machines, each query made once per evaluation."""

    def __init__(self, conn: psycopg.Connection, now: datetime) -> None:
        self._conn, self._now = conn, now
        self._horizons: dict[uuid.UUID, datetime | None] = {}
        self._cache: dict[tuple[object, ...], float] = {}

    def horizon(self, machine: uuid.UUID) -> datetime | None:
        """The latest timestamp landed for `machine` (any series), at most now."""
        if machine not in self._horizons:
            row = self._conn.execute(_HORIZON, {"m": machine}).fetchone()
            latest = row[0] if row else None
            self._horizons[machine] = min(latest, self._now) if latest else None
        return self._horizons[machine]

    def reading(self, machine: uuid.UUID, kind: str, tag: str | None, since: datetime) -> float:
        """Runtime hours (`kind` runtime_hours) or the increase of counter `tag` (cycles) of
        `machine` from `since` to its horizon."""
        key = (machine, kind, tag, since)
        if key not in self._cache:
            until = self.horizon(machine)
            if until is None or until <= since:
                value = 0.0
            else:
                sql, params = ((_RUNTIME, {}) if kind == "runtime_hours"
                               else (_COUNTER, {"tag": tag}))
                row = self._conn.execute(
                    sql, {"m": machine, "since": since, "until": until, **params}).fetchone()
                value = float(row[0]) if row and row[0] is not None else 0.0
            self._cache[key] = value
        return self._cache[key]
