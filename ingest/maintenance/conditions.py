"""Condition rules: one inspection task per episode, with hysteresis and evidence.

A **telemetry** rule (`tag` above/below `threshold`) trips when every row of the tag stays
beyond the threshold for `for_seconds` (from the first such row to the row that completes
the time); the episode lasts until a row crosses back past `clear_threshold` (the hysteresis:
values between the two neither trip nor clear). A **state_count** rule trips when
`count_threshold` state rows of `state` (with `reason_code`, if set) fall within
`window_seconds`; it clears once the window holds fewer than `clear_count` (default: the
threshold). Only rows after the last clearing (or the rule's `active_from`), and stamped at
or before now, can trip a new episode. The evidence is the rows that tripped it (at most
EVIDENCE_MAX).

Episodes and tasks are written per (rule, machine) under an advisory lock, from landed rows,
so a replay, a restart or a second engine finds the same episodes and raises nothing twice.

Cost. A stored **cursor** per (rule, machine) (mes.pm_condition_cursors) says that in the
episode state it names (the last episode, tripped or not) every row up to `at` was scanned
without a trip or a clearing; a telemetry rule's cursor also keeps where the open run beyond
the threshold began (a run shorter than `for_seconds`: no trip yet). An evaluation in that
state reads only the rows after the cursor (from the run's start; for a count rule, from a
window before it), so it is flat with history. The cursor is placed as settling.py says
(`lag` behind now, at or before the machine's latest landed row) and ignored, so the scan
starts from the last episode again, when the episode state moved on or its chain is due a
rebuild.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ingest.maintenance.raising import checklist_items, lock_pairs
from ingest.maintenance.settling import Settling

EVIDENCE_MAX = 50
_US = timedelta(microseconds=1)  # timestamptz's resolution: `ts > t - _US` is `ts >= t`

_RULES = """
SELECT r.id, r.name, r.rule_kind, r.tag, r.comparison, r.threshold, r.clear_threshold,
       r.for_seconds, r.state, r.reason_code, r.count_threshold,
       coalesce(r.clear_count, r.count_threshold), r.window_seconds, r.active_from,
       r.checklist, r.priority, r.estimated_minutes, r.default_assignee_id,
       m.id, m.organization_id, m.plant_id
FROM mes.pm_condition_rules r
JOIN mes.machines m ON m.organization_id = r.organization_id
     AND (m.id = r.machine_id
          OR (r.machine_kind IS NOT NULL AND m.kind = r.machine_kind AND m.plant_id = r.plant_id))
WHERE r.is_active AND m.is_active
  AND (%(machines)s::uuid[] IS NULL OR m.id = ANY(%(machines)s))
ORDER BY r.id, m.id
"""

_LAST_EPISODE = """
SELECT id, episode, tripped_at, cleared_at FROM mes.pm_condition_episodes
WHERE rule_id = %s AND machine_id = %s ORDER BY episode DESC LIMIT 1
"""

_CURSOR = """
SELECT episode, tripped, at, run_start, rebuilt_at FROM mes.pm_condition_cursors
WHERE rule_id = %s AND machine_id = %s
"""

# Replicas may write the same cursor: the later episode state (an episode trips, then clears)
# wins, then the newer rebuild, then the later cursor (settling.py).
_STORE_CURSOR = """
INSERT INTO mes.pm_condition_cursors AS c (organization_id, plant_id, rule_id, machine_id,
    episode, tripped, at, run_start, rebuilt_at)
VALUES (%(org)s, %(plant)s, %(rule)s, %(machine)s, %(episode)s, %(tripped)s, %(at)s,
        %(run_start)s, %(rebuilt_at)s)
ON CONFLICT (rule_id, machine_id) DO UPDATE
SET episode = excluded.episode, tripped = excluded.tripped, at = excluded.at,
    run_start = excluded.run_start, rebuilt_at = excluded.rebuilt_at
WHERE (excluded.episode, NOT excluded.tripped, excluded.rebuilt_at, excluded.at)
      > (c.episode, NOT c.tripped, c.rebuilt_at, c.at)
"""

_TELEMETRY = """
SELECT ts, value FROM mes.v_machine_telemetry
WHERE machine_id = %s AND tag = %s AND ts > %s AND ts <= %s ORDER BY ts
"""

_STATES = """
SELECT ts, state, reason_code FROM mes.v_machine_status_history
WHERE machine_id = %s AND state = %s AND (%s::text IS NULL OR reason_code = %s) AND ts > %s
  AND ts <= %s
ORDER BY ts
"""


@dataclass
class Episode:
    """A trip found in the rows: when it started and tripped, the rows, and its clearing."""

    started_at: datetime
    tripped_at: datetime
    evidence: list[dict[str, Any]] = field(default_factory=list)
    cleared_at: datetime | None = None


def scan_telemetry(rows: Sequence[tuple[datetime, float]], above: bool, threshold: float,
                   clear: float, for_s: float, tripped: bool
                   ) -> tuple[datetime | None, list[Episode], datetime | None]:
    """Walk rows in time order. Returns (when an episode already on cleared, or None; the new
    episodes found, the last maybe still on; where the run beyond the threshold that is still
    open at the last row began, or None)."""
    beyond = (lambda v: v > threshold) if above else (lambda v: v < threshold)
    back = (lambda v: v <= clear) if above else (lambda v: v >= clear)
    cleared_open: datetime | None = None
    episodes: list[Episode] = []
    run: list[tuple[datetime, float]] = []
    for ts, value in rows:
        if tripped:
            if back(value):
                tripped = False
                if episodes:
                    episodes[-1].cleared_at = ts
                else:
                    cleared_open = ts
            continue
        if not beyond(value):
            run = []
            continue
        run.append((ts, value))
        if (ts - run[0][0]).total_seconds() >= for_s:
            episodes.append(Episode(run[0][0], ts, [
                {"ts": t.isoformat(), "value": v} for t, v in run[-EVIDENCE_MAX:]]))
            tripped, run = True, []
    return cleared_open, episodes, run[0][0] if run else None


def scan_counts(rows: Sequence[tuple[datetime, str, str | None]], count: int, clear: int,
                window_s: float, horizon: datetime, tripped: bool, since: datetime,
                after: datetime | None = None) -> tuple[datetime | None, list[Episode]]:
    """The same for a state_count rule over its matching state rows (time order). `after`: a
    cursor (no trip or clearing at or before it; the rows from a window before it suffice)."""
    window = timedelta(seconds=window_s)
    times = [r[0] for r in rows]
    cleared_open: datetime | None = None
    episodes: list[Episode] = []
    i = 0

    def in_window(t: datetime, start: datetime) -> list[int]:
        return [k for k, x in enumerate(times) if start < x <= t and t - window < x]

    while True:
        if tripped:
            trip_at = episodes[-1].tripped_at if episodes else since
            # The count falls only when a row leaves the window.
            lo = max(trip_at, after) if after else trip_at
            exits = sorted(x + window for x in times if x + window > lo)
            cleared = next((c for c in exits if c <= horizon
                            and len(in_window(c, trip_at - window)) < clear), None)
            if cleared is None:
                return cleared_open, episodes
            if episodes:
                episodes[-1].cleared_at = cleared
            else:
                cleared_open = cleared
            since, tripped = cleared, False
        while i < len(times) and times[i] <= (max(since, after) if after else since):
            i += 1
        for j in range(i, len(times)):
            hits = in_window(times[j], since)
            if len(hits) >= count:
                episodes.append(Episode(times[hits[0]], times[j], [
                    {"ts": rows[k][0].isoformat(), "state": rows[k][1],
                     "reason_code": rows[k][2]} for k in hits[-EVIDENCE_MAX:]]))
                tripped, i = True, j + 1
                break
        else:
            return cleared_open, episodes


def evaluate(conn: psycopg.Connection, machines: Sequence[uuid.UUID] | None, now: datetime,
             settling: Settling) -> list[uuid.UUID]:
    """Find new episodes and clearings of the tenant's rules (on `machines`), from the stored
    cursors where they hold; returns the ids of the inspection tasks raised."""
    rules = conn.execute(_RULES, {"machines": machines}).fetchall()
    lock_pairs(conn, "cond", [(r[0], r[18]) for r in rules])
    raised = []
    for r in rules:
        raised += _evaluate_one(conn, r, now, settling)
    return raised


def _evaluate_one(conn: psycopg.Connection, r: Sequence[Any], now: datetime,
                  settling: Settling) -> list[uuid.UUID]:
    (rule, name, kind, tag, comparison, threshold, clear, for_s, state, reason, count,
     clear_count, window_s, active_from, checklist, priority, estimated, assignee,
     machine, org, plant) = r
    last = conn.execute(_LAST_EPISODE, (rule, machine)).fetchone()
    tripped = bool(last and last[3] is None)
    since = (last[2] if tripped else last[3]) if last else active_from
    n = last[1] if last else 0
    cursor = conn.execute(_CURSOR, (rule, machine)).fetchone()
    if not (cursor and (cursor[0], cursor[1]) == (n, tripped) and since <= cursor[2] <= now
            and settling.fresh(cursor[4], now)):
        cursor = None
    scanned = cursor[2] if cursor else since
    if kind == "telemetry":
        # From the open run's first row (it may still trip), else after the cursor.
        start = cursor[3] - _US if cursor and cursor[3] else scanned
        rows = conn.execute(_TELEMETRY, (machine, tag, start, now)).fetchall()

        def scan(upto: datetime | None = None) -> tuple[datetime | None, list[Episode],
                                                        datetime | None]:
            return scan_telemetry([x for x in rows if upto is None or x[0] <= upto],
                                  comparison == "above", threshold, clear, for_s, tripped)
        cleared_open, found, _ = scan()
    else:
        rows = conn.execute(_STATES, (machine, state, reason, reason,
                                      scanned - timedelta(seconds=window_s), now)).fetchall()
        cleared_open, found = scan_counts(rows, count, clear_count, window_s, now, tripped,
                                          since, cursor[2] if cursor else None)
    if not found and cleared_open is None:
        # Nothing moved the episode state: the cursor moves on (settling.py).
        horizon = conn.execute("SELECT mes.machine_latest_row(%s, %s, %s)",
                               (machine, scanned, now)).fetchone()
        at = min(settling.cut(now), horizon[0]) if horizon and horizon[0] else None
        if (at is not None and at > scanned
                and settling.advances(cursor[2] if cursor else None, at)):
            conn.execute(_STORE_CURSOR, {
                "org": org, "plant": plant, "rule": rule, "machine": machine, "episode": n,
                "tripped": tripped, "at": at,
                "run_start": None if tripped or kind != "telemetry" else scan(at)[2],
                "rebuilt_at": cursor[4] if cursor else now})
    if last and cleared_open:
        conn.execute("UPDATE mes.pm_condition_episodes SET cleared_at = %s WHERE id = %s",
                     (cleared_open, last[0]))
    raised = []
    for ep in found:
        n += 1
        conn.execute(
            "INSERT INTO mes.pm_condition_episodes (organization_id, plant_id, rule_id, "
            "machine_id, episode, started_at, tripped_at, cleared_at, evidence) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (org, plant, rule, machine, n, ep.started_at, ep.tripped_at, ep.cleared_at,
             Jsonb(ep.evidence)))
        row = conn.execute(
            "INSERT INTO mes.pm_tasks (organization_id, plant_id, condition_rule_id, "
            "machine_id, occurrence, task_kind, title, due_at, raised_by, priority, checklist, "
            "estimated_minutes, evidence, assignee_id) VALUES (%s, %s, %s, %s, %s, "
            "'condition', %s, %s, 'condition', %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (org, plant, rule, machine, n, name, ep.tripped_at, priority,
             Jsonb(checklist_items(checklist)), estimated, Jsonb(ep.evidence), assignee)
        ).fetchone()
        if row:
            raised.append(row[0])
    return raised
