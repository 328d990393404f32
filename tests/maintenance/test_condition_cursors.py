"""Condition rules evaluated from their stored cursors find the same episodes (trip, clearing,
evidence) as the same rules evaluated once from scratch, whatever the steps in which the rows
land: an episode that trips over two evaluations, hysteresis held across evaluations, a count
window spanning the cursor, and a restarted engine (every step starts from what is stored)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from core.tenancy import Tenant, tenant_transaction
from ingest.maintenance import conditions
from ingest.maintenance.settling import Settling
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.maintenance.helpers import add_machine

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)
SETTLING = Settling(lag=2 * M, recompute=timedelta(days=1))
# (minute, spindle temperature): threshold 60 for 5 min, cleared at or below 55.
TEMPS = ([(i, 61.0 + i % 4) for i in range(5)] + [(5, 50.0)]  # not long enough
         + [(10 + i, 62.0) for i in range(7)]  # trips at 15, over two steps
         + [(20, 57.0), (21, 58.0), (22, 65.0), (28, 57.0)]  # hysteresis: the same episode
         + [(30, 54.0)] + [(31 + i, 70.0) for i in range(6)]  # cleared; episode 2 at 36
         + [(45, 40.0), (50, 61.0), (53, 61.0)])  # cleared; an open run at the end
# (minute, fault rows with reason F12): 3 within 20 minutes trip, fewer than 2 clear.
FAULTS = [2, 9, 16, 19, 27, 33, 50, 52, 54, 80]
STEPS = (4, 13, 18, 21, 29, 33, 35, 40, 52, 60, 95)


def _rules(conn: psycopg.Connection, tenants: Tenants, machine: uuid.UUID, active: bool
           ) -> list[uuid.UUID]:
    common = {"organization_id": tenants.a.id, "plant_id": tenants.a1, "machine_id": machine,
              "name": "Inspect", "active_from": T0 - M, "is_active": active}
    rules: list[dict[str, Any]] = [
        {**common, "rule_kind": "telemetry", "tag": "spindle_temp", "comparison": "above",
         "threshold": 60, "clear_threshold": 55, "for_seconds": 300},
        {**common, "rule_kind": "state_count", "state": "fault", "reason_code": "F12",
         "count_threshold": 3, "clear_count": 2, "window_seconds": 1200}]
    ids = []
    for cols in rules:
        row = conn.execute(f"INSERT INTO mes.pm_condition_rules ({', '.join(cols)}) VALUES "
                           f"({', '.join(['%s'] * len(cols))}) RETURNING id",
                           list(cols.values())).fetchone()
        assert row is not None
        ids.append(row[0])
    return ids


def _land(db: TestDatabase, tenants: Tenants, machine: uuid.UUID, upto: int) -> None:
    with db.superuser() as conn:
        for minute, value in TEMPS:
            if minute < upto:
                conn.execute("INSERT INTO mes.machine_telemetry (organization_id, plant_id, "
                             "machine_id, tag, ts, value) VALUES (%s, %s, %s, 'spindle_temp', "
                             "%s, %s) ON CONFLICT DO NOTHING",
                             (tenants.a.id, tenants.a1, machine, T0 + minute * M, value))
        for minute in FAULTS:
            if minute < upto:
                conn.execute("INSERT INTO mes.machine_status_history (organization_id, "
                             "plant_id, machine_id, ts, state, reason_code) VALUES (%s, %s, "
                             "%s, %s, 'fault', 'F12') ON CONFLICT DO NOTHING",
                             (tenants.a.id, tenants.a1, machine, T0 + minute * M))


def _episodes(db: TestDatabase, rule: uuid.UUID) -> list[tuple[Any, ...]]:
    with db.superuser() as conn:
        return conn.execute("SELECT episode, started_at, tripped_at, cleared_at, evidence "
                            "FROM mes.pm_condition_episodes WHERE rule_id = %s "
                            "ORDER BY episode", (rule,)).fetchall()


def test_rules_from_cursors_find_the_episodes_found_from_scratch(database: TestDatabase,
                                                                 tenants: Tenants) -> None:
    _, machine = add_machine(database, tenants)
    tenant = Tenant(tenants.a.id, tenants.a1)
    with database.superuser() as conn:
        stepped = _rules(conn, tenants, machine, active=True)
        scratch = _rules(conn, tenants, machine, active=False)
    cursors_seen = set()
    with database.app(autocommit=True) as conn:
        for upto in STEPS:
            _land(database, tenants, machine, upto)
            with tenant_transaction(conn, tenant):
                conditions.evaluate(conn, [machine], T0 + upto * M, SETTLING)
            with database.superuser() as su:
                cursors_seen |= set(su.execute(
                    "SELECT rule_id, episode, tripped, run_start IS NOT NULL "
                    "FROM mes.pm_condition_cursors WHERE machine_id = %s", (machine,)))
    with database.superuser() as conn:
        conn.execute("UPDATE mes.pm_condition_rules SET is_active = NOT is_active "
                     "WHERE machine_id = %s", (machine,))
    with database.app(autocommit=True) as conn, tenant_transaction(conn, tenant):
        conditions.evaluate(conn, [machine], T0 + STEPS[-1] * M, SETTLING)
    for a, b in zip(stepped, scratch, strict=True):
        assert _episodes(database, a) == _episodes(database, b)
    telemetry, counts = (_episodes(database, r) for r in stepped)
    assert [(e[0], e[2] - T0, e[3] and e[3] - T0) for e in telemetry] == [
        (1, 15 * M, 30 * M), (2, 36 * M, 45 * M)]
    # Cleared once a fault leaves the window with fewer than 2 in it (47: only 33; 72: 54).
    assert [(e[0], e[2] - T0, e[3] - T0) for e in counts] == [(1, 16 * M, 47 * M),
                                                             (2, 54 * M, 72 * M)]
    # The cursors were used in every state: before a trip (with an open run), tripped,
    # and cleared.
    assert {(r, e, t) for r, e, t, _ in cursors_seen} >= {
        (stepped[0], 0, False), (stepped[0], 1, True), (stepped[0], 2, False),
        (stepped[1], 1, True)}
    assert (stepped[0], 0, False, True) in cursors_seen
