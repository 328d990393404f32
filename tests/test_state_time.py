"""Time in each state per machine and hour (mes.v_machine_state_hourly), on the plain path."""

from __future__ import annotations

from datetime import UTC, datetime

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
