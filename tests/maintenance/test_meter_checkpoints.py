"""Meters read from checkpoints (in memory between sweeps, and stored for sweeps) equal meters
read from scratch: runtime across state changes, offline and a quiet gateway; a counter across
a restart of its running total; whatever the steps in which the rows land."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from core.tenancy import Tenant, tenant_transaction
from ingest.maintenance.meters import Checkpoint, Key, Meters
from ingest.maintenance.settling import Settling
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.maintenance.helpers import add_machine

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)
# (minute, state) and (minute, counter value); the counter's total restarts at minute 40.
STATES = [(0, "idle"), (5, "running"), (20, "fault"), (22, "running"), (30, "offline"),
          (35, "running"), (50, "idle"), (55, "running")]
COUNTS = [(1, 100.0), (10, 130.0), (21, 180.0), (33, 180.0), (40, 12.0), (52, 60.0),
          (58, 75.0), (70, 90.0)]


def _land(db: TestDatabase, tenants: Tenants, machine: uuid.UUID, upto: int) -> None:
    """The rows stamped before minute `upto` that are not in yet (as the ingest would)."""
    landed = [("machine_status_history", "ts, state",
               [(m, (T0 + m * M, state)) for m, state in STATES]),
              ("machine_counter", "tag, ts, value",
               [(m, ("cycles", T0 + m * M, value)) for m, value in COUNTS])]
    with db.superuser() as conn:
        for table, columns, rows in landed:
            for minute, values in rows:
                if minute < upto:
                    conn.execute(
                        f"INSERT INTO mes.{table} (organization_id, plant_id, machine_id, "
                        f"{columns}) VALUES (%s, %s, %s, {', '.join(['%s'] * len(values))}) "
                        "ON CONFLICT DO NOTHING", (tenants.a.id, tenants.a1, machine, *values))


def _readings(conn: psycopg.Connection, tenant: Tenant, keys: list[Key], now: datetime,
              checkpoints: dict[Key, Checkpoint] | None) -> list[float]:
    with tenant_transaction(conn, tenant):
        meters = Meters(conn, now, checkpoints)
        meters.prefetch(keys)
        return [round(meters.reading(*k), 9) for k in keys]


def test_checkpointed_meters_equal_meters_from_scratch(database: TestDatabase,
                                                       tenants: Tenants) -> None:
    _, machine = add_machine(database, tenants)
    tenant = Tenant(tenants.a.id, tenants.a1)
    keys: list[Key] = [(machine, kind, tag, T0 + since * M)
                       for kind, tag in (("runtime_hours", None), ("cycles", "cycles"))
                       for since in (0, 7, 25)]
    checkpoints: dict[Key, Checkpoint] = {}
    with database.app(autocommit=True) as conn:
        for upto in (3, 12, 21, 31, 36, 45, 56, 80):
            _land(database, tenants, machine, upto)
            now = T0 + 90 * M
            stepped = _readings(conn, tenant, keys, now, checkpoints)
            assert stepped == _readings(conn, tenant, keys, now, None), upto
    # From scratch at the end, by hand: running 5-20, 22-30, 35-50 and 55 up to the last row
    # (minute 70: the counter row is the horizon; the gateway then went quiet).
    hours = [(15 + 8 + 15 + 15) / 60, (13 + 8 + 15 + 15) / 60, (5 + 15 + 15) / 60]
    # Increases from the base row (minute 1 for the first two, before minute 1 there is none;
    # minute 21 for the third): up to 180, the restart adds 12, then 12 -> 90.
    cycles = [80 + 12 + 78, 80 + 12 + 78, 0 + 12 + 78]
    assert stepped == [round(h, 9) for h in hours] + [float(c) for c in cycles]


def _stored(db: TestDatabase, machine: uuid.UUID) -> list[tuple[str, datetime]]:
    with db.superuser() as conn:
        return conn.execute("SELECT meter_kind, max(at) FROM mes.pm_meter_checkpoints "
                            "WHERE machine_id = %s GROUP BY meter_kind ORDER BY meter_kind",
                            (machine,)).fetchall()


def _late(db: TestDatabase, tenants: Tenants, machine: uuid.UUID, minute: int, state: str,
          value: float) -> None:
    """A state row and a counter row stamped `minute` that land only now."""
    with db.superuser() as conn:
        conn.execute("INSERT INTO mes.machine_status_history (organization_id, plant_id, "
                     "machine_id, ts, state) VALUES (%s, %s, %s, %s, %s)",
                     (tenants.a.id, tenants.a1, machine, T0 + minute * M, state))
        conn.execute("INSERT INTO mes.machine_counter (organization_id, plant_id, machine_id, "
                     "tag, ts, value) VALUES (%s, %s, %s, 'cycles', %s, %s)",
                     (tenants.a.id, tenants.a1, machine, T0 + minute * M, value))


def test_stored_checkpoints_equal_meters_from_scratch(database: TestDatabase,
                                                      tenants: Tenants) -> None:
    """Each step is a new Meters (a restarted engine, or another replica): it starts from the
    checkpoints stored by the step before, a settling lag behind its clock, and equals the
    meters from scratch, across the counter's restart at minute 40 (read from a checkpoint
    stored at minute 21) and a row landing late but after the stored checkpoint. A row landing
    before a stored checkpoint (later than the lag promises) counts once the chain is
    rebuilt."""
    _, machine = add_machine(database, tenants)
    tenant = Tenant(tenants.a.id, tenants.a1)
    settling = Settling(lag=5 * M, recompute=timedelta(days=1))
    keys: list[Key] = [(machine, kind, tag, T0 + since * M)
                       for kind, tag in (("runtime_hours", None), ("cycles", "cycles"))
                       for since in (0, 7, 25)]

    def stored_readings(now: datetime) -> list[float]:
        with tenant_transaction(conn, tenant):
            meters = Meters(conn, now, None, settling)
            meters.prefetch(keys)
            return [round(meters.reading(*k), 9) for k in keys]

    with database.app(autocommit=True) as conn:
        for upto in (3, 12, 21, 31, 36, 45, 56, 80):
            _land(database, tenants, machine, upto)
            now = T0 + upto * M
            assert stored_readings(now) == _readings(conn, tenant, keys, now, None), upto
            if upto == 36:  # the next step reads the restart (minute 40) from this checkpoint
                assert dict(_stored(database, machine))["cycles"] == T0 + 21 * M
        assert [at <= now - settling.lag for _, at in _stored(database, machine)] == [True] * 2
        # Late, after the stored checkpoints (minute 70 at most): counted at once.
        _late(database, tenants, machine, 72, "running", 50.0)
        now = T0 + 100 * M
        assert stored_readings(now) == _readings(conn, tenant, keys, now, None)
        # Late, before them: the stored chain misses it until it is rebuilt.
        _late(database, tenants, machine, 26, "idle", 170.0)
        scratch = _readings(conn, tenant, keys, now, None)
        assert stored_readings(now) != scratch
        rebuilt = now + settling.recompute
        assert stored_readings(rebuilt) == scratch == _readings(conn, tenant, keys, rebuilt, None)
