"""Time in each state per machine and hour (mes.v_machine_state_hourly), and over a range
(mes.machine_time_in_state)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core.staging import write_staged
from core.tenancy import Tenant, tenant_transaction
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants

H = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)


def test_time_in_state_splits_at_hour_boundaries(database: TestDatabase,
                                                 tenants: Tenants) -> None:
    a = tenants.a
    m, p = a.machines["a2"], a.machine_plant["a2"]
    samples = [(H, "running"), (H.replace(minute=30), "fault"),
               (H.replace(hour=11, minute=15), "running"), (H.replace(hour=12), "idle")]
    with database.app() as conn:
        with tenant_transaction(conn, Tenant(a.id)):
            write_staged(conn, "machine_status", [(a.id, p, m, ts, s, None) for ts, s in samples])
        with tenant_transaction(conn, Tenant(a.id, plant_id=p)):
            rows = conn.execute(
                "SELECT bucket, state, seconds FROM mes.v_machine_state_hourly "
                "WHERE machine_id = %s AND bucket >= %s ORDER BY bucket, state", (m, H)
            ).fetchall()
        with tenant_transaction(conn, Tenant(a.id, plant_id=a.plants["a1"])):
            other_plant = conn.execute(
                "SELECT count(*) FROM mes.v_machine_state_hourly WHERE machine_id = %s", (m,)
            ).fetchone()
    assert rows == [
        (H, "fault", 1800.0), (H, "running", 1800.0),
        (H.replace(hour=11), "fault", 900.0), (H.replace(hour=11), "running", 2700.0),
    ]
    assert other_plant == (0,)


def _hourly_view_totals(conn: psycopg.Connection, machine: uuid.UUID, start: datetime,
                        end: datetime) -> dict[str, float]:
    """What the API summed before mes.machine_time_in_state: the hourly view's rows."""
    return dict(conn.execute(
        "SELECT state, sum(seconds) FROM mes.v_machine_state_hourly "
        "WHERE machine_id = %s AND bucket >= %s AND bucket < %s GROUP BY state",
        (machine, start, end)).fetchall())


def _bounded_totals(conn: psycopg.Connection, machine: uuid.UUID, start: datetime,
                    end: datetime) -> dict[str, float]:
    return dict(conn.execute("SELECT state, seconds FROM mes.machine_time_in_state(%s, %s, %s)",
                             (machine, start, end)).fetchall())


def test_bounded_time_in_state_equals_the_hourly_view(database: TestDatabase,
                                                      tenants: Tenants) -> None:
    """mes.machine_time_in_state reads only the range's samples (and one on either side) yet
    gives what the hourly view's whole-history computation gives: ranges starting mid-state,
    across an offline stretch and an hour without samples, ending in the current hour, and
    random samples (microseconds included)."""
    a, b = tenants.a, tenants.b
    m, p = a.machines["a1"], a.machine_plant["a1"]
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    d = hour - timedelta(days=2)
    samples = [
        (d, "running"), (d + timedelta(minutes=20), "fault"),
        (d + timedelta(hours=1, minutes=40), "running"),        # fault held across 11:00
        (d + timedelta(hours=3, minutes=10), "offline"),       # 2 hours without a sample before
        (d + timedelta(hours=3, minutes=50), "offline"),
        (d + timedelta(hours=4, minutes=5), "idle"),
        (d + timedelta(hours=4, minutes=30), "planned_stop"),
        (d + timedelta(hours=5), "running"),                   # exactly on the hour
        (d + timedelta(hours=5, minutes=59, seconds=59), "setup"),
        (hour - timedelta(minutes=45), "running"),             # a day and more without data
        (hour - timedelta(minutes=5), "fault"),
        (hour + (now - hour) / 2, "idle"),                     # the latest: counts up to now
    ]
    rng = random.Random(10)
    noisy, ts = [], hour - timedelta(days=3)
    while ts < now - timedelta(minutes=1):
        noisy.append((ts, rng.choice(["running", "idle", "fault", "offline", "planned_stop"])))
        ts += timedelta(seconds=rng.uniform(1, 5400), microseconds=rng.randrange(1_000_000))
    with database.app() as conn:
        with tenant_transaction(conn, Tenant(a.id)):
            write_staged(conn, "machine_status", [(a.id, p, m, t, s, None) for t, s in samples])
        with tenant_transaction(conn, Tenant(b.id)):
            write_staged(conn, "machine_status", [(b.id, b.machine_plant["b1"],
                                                   b.machines["b1"], t, s, None)
                                                  for t, s in noisy])
        ranges = [(d, d + timedelta(hours=1)), (d + timedelta(hours=1), d + timedelta(hours=3)),
                  (d + timedelta(minutes=30), d + timedelta(hours=4, minutes=1)),
                  (d + timedelta(hours=2), d + timedelta(hours=6)),
                  (d + timedelta(hours=4), hour + timedelta(hours=1)),
                  (d - timedelta(days=1), now), (hour, now + timedelta(hours=2)),
                  (d + timedelta(hours=6), hour - timedelta(hours=1)),
                  (d - timedelta(days=2), d)]
        compared = 0
        for tenant, machine in ((Tenant(a.id, plant_id=p), m),
                                (Tenant(b.id), b.machines["b1"])):
            with tenant_transaction(conn, tenant):  # one transaction: one now() for both
                for start, end in ranges:
                    old = _hourly_view_totals(conn, machine, start, end)
                    new = _bounded_totals(conn, machine, start, end)
                    assert new.keys() == old.keys(), (start, end)
                    assert new == {k: pytest.approx(v, abs=1e-6) for k, v in old.items()}, \
                        (start, end)
                    compared += bool(old)
            with tenant_transaction(conn, Tenant(b.id if machine == m else a.id)):
                assert _bounded_totals(conn, machine, ranges[5][0], ranges[5][1]) == {}
    assert compared >= 14  # the ranges had data to compare, not just empty totals
    with database.app() as conn, tenant_transaction(conn, Tenant(a.id, plant_id=p)):
        mid_state = _bounded_totals(conn, m, d + timedelta(hours=1), d + timedelta(hours=2))
        gap = _bounded_totals(conn, m, d + timedelta(hours=2), d + timedelta(hours=4))
    # The fault from the hour before holds until the running at :40, which the next hour,
    # without samples, leaves unknown; offline is a state like any other (to the next hour's
    # first sample), an hour without samples is in none.
    assert mid_state == {"fault": 2400.0}
    assert gap == {"offline": 3000.0}
