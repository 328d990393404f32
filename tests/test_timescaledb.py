"""The TimescaleDB path: who runs the jobs, what the application role may not do, and the
compression, retention and continuous-aggregate policies, each run with CALL run_job (the test
cluster runs no job scheduler: mes/services/postgres.py).

Rows are placed relative to now, where the policies look: a day 20 days back is past
compress_after of the state table (14 days) and inside the aggregate's refresh window
(21 days).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors

from core import migrations
from core.staging import TIME_SERIES_TABLES, write_staged
from core.tenancy import SET_TENANT_SQL, Tenant, tenant_transaction
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants

pytestmark = pytest.mark.timescaledb

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
LATE = HOUR - timedelta(days=20)  # compressible, still refreshed


@pytest.fixture
def app(database: TestDatabase) -> Iterator[psycopg.Connection]:
    with database.app() as conn:
        yield conn


def run_policy(db: TestDatabase, proc: str, relation: str) -> None:
    """Run the policy job `proc` of a hypertable or continuous aggregate now, as the owner."""
    with db.superuser(autocommit=True) as conn:
        row = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs "
            "WHERE proc_name = %s AND hypertable_schema = 'mes' AND hypertable_name = %s",
            (proc, relation)).fetchone()
        assert row is not None, f"no {proc} job on mes.{relation}"
        conn.execute(f"SET ROLE {migrations.OWNER_ROLE}")
        conn.execute("CALL run_job(%s)", (row[0],))


def chunks(db: TestDatabase, table: str, compressed: bool | None = None) -> list[str]:
    with db.superuser() as conn:
        rows = conn.execute(
            "SELECT chunk_name FROM timescaledb_information.chunks "
            "WHERE hypertable_schema = 'mes' AND hypertable_name = %s "
            "AND (%s::bool IS NULL OR is_compressed = %s) ORDER BY range_start",
            (table, compressed, compressed)).fetchall()
    return [r[0] for r in rows]


def status_samples(tenants: Tenants, start: datetime) -> list[tuple]:
    """Three hours of state samples every 10 minutes on machine a1 of organization A."""
    a = tenants.a
    states = ["running", "running", "fault", "idle", "running", "setup"]
    return [(a.id, a.machine_plant["a1"], a.machines["a1"], start + timedelta(minutes=10 * i),
             states[i % len(states)], None) for i in range(18)]


def test_time_series_are_hypertables_whose_jobs_run_as_a_login_role(
    database: TestDatabase,
) -> None:
    with database.superuser() as conn:
        owners = dict(conn.execute(
            "SELECT hypertable_name, owner FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = 'mes'").fetchall())
        jobs = conn.execute(
            "SELECT j.proc_name, j.hypertable_name, a.rolcanlogin, a.rolpassword IS NULL "
            "FROM timescaledb_information.jobs j JOIN pg_authid a ON a.oid = j.owner "
            "WHERE j.hypertable_schema = 'mes'").fetchall()
        owner_login = conn.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
            (migrations.OWNER_ROLE,)).fetchone()
    assert set(TIME_SERIES_TABLES) <= set(owners)
    assert {owners[t] for t in TIME_SERIES_TABLES} == {"mes_jobs"}
    kinds = {proc for proc, *_ in jobs}
    assert kinds == {"policy_compression", "policy_retention",
                     "policy_refresh_continuous_aggregate"}
    assert all(login and no_password for _, _, login, no_password in jobs), jobs
    assert owner_login == (False,)


def test_refresh_window_reaches_past_compress_after(database: TestDatabase) -> None:
    with database.superuser() as conn:
        rows = conn.execute(
            """SELECT (r.config->>'start_offset')::interval, (c.config->>'compress_after')::interval
               FROM timescaledb_information.jobs r
               JOIN timescaledb_information.continuous_aggregates a
                 ON a.view_schema = r.hypertable_schema AND a.view_name = r.hypertable_name
               JOIN timescaledb_information.jobs c
                 ON c.proc_name = 'policy_compression'
                AND c.hypertable_schema = a.hypertable_schema
                AND c.hypertable_name = a.hypertable_name
               WHERE r.proc_name = 'policy_refresh_continuous_aggregate'""").fetchall()
    assert rows, "no continuous aggregate with a refresh and a compression policy"
    for start_offset, compress_after in rows:
        assert start_offset > compress_after


def test_app_role_cannot_schedule_run_or_change_jobs(app: psycopg.Connection,
                                                     database: TestDatabase) -> None:
    with database.superuser() as conn:
        row = conn.execute("SELECT min(job_id) FROM timescaledb_information.jobs "
                           "WHERE hypertable_schema = 'mes'").fetchone()
    assert row is not None
    job = row[0]
    attempts = [
        ("SELECT add_job('pg_catalog.pg_sleep'::regproc, '1 minute')", ()),
        ("SELECT alter_job(%s, scheduled => false)", (job,)),
        ("SELECT delete_job(%s)", (job,)),
        ("CALL run_job(%s)", (job,)),
        ("SELECT add_retention_policy('mes.machine_telemetry', INTERVAL '1 day')", ()),
        ("SELECT remove_compression_policy('mes.machine_status_history')", ()),
    ]
    for statement, params in attempts:
        with pytest.raises(errors.InsufficientPrivilege), app.transaction():
            app.execute(statement, params)


def test_compressed_chunks_stay_readable_and_take_late_rows(
    app: psycopg.Connection, database: TestDatabase, tenants: Tenants
) -> None:
    a, b = tenants.a, tenants.b
    samples = status_samples(tenants, LATE)
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "machine_status", samples) == len(samples)
    event = uuid.uuid4()
    m, p = a.machines["a1"], a.machine_plant["a1"]
    stop = (a.id, p, m, event, LATE - timedelta(days=20), None, "fault", None, "unplanned", None,
            None)
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "downtime_event", [stop]) == 1

    run_policy(database, "policy_compression", "machine_status_history")
    run_policy(database, "policy_compression", "downtime_event")
    assert chunks(database, "machine_status_history", compressed=True)
    assert chunks(database, "downtime_event", compressed=True)
    assert not chunks(database, "machine_status_history", compressed=False)

    def stored(tenant: Tenant) -> list[tuple]:
        with tenant_transaction(app, tenant):
            return app.execute(
                "SELECT organization_id, plant_id, machine_id, ts, state, reason_code "
                "FROM mes.v_machine_status_history WHERE ts >= %s ORDER BY ts",
                (LATE,)).fetchall()

    assert stored(Tenant(a.id)) == samples
    assert stored(Tenant(b.id)) == []

    # A late row lands in the compressed chunk; its replay writes nothing; another
    # organization's row there is refused like anywhere else.
    late = (a.id, p, m, LATE + timedelta(minutes=5), "blocked", "jam")
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "machine_status", [late]) == 1
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "machine_status", [late]) == 0
    with pytest.raises(errors.InsufficientPrivilege), tenant_transaction(app, Tenant(b.id)):
        write_staged(app, "machine_status",
                     [(*late[:3], late[3] + timedelta(seconds=1), "idle", None)])
    assert stored(Tenant(a.id)) == sorted([*samples, late], key=lambda r: r[3])

    # The end of a stop whose start is compressed still closes it.
    ended = (*stop[:5], stop[4] + timedelta(minutes=30), *stop[6:])
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "downtime_event", [ended]) == 1
        got = app.execute("SELECT ended_at FROM mes.v_downtime_event WHERE event_id = %s",
                          (event,)).fetchone()
    assert got == (ended[5],)

    # The compressed chunks are tables of their own, and out of the application's reach.
    reachable = app.execute(
        """SELECT format('%I.%I', c.schema_name, c.table_name) FROM _timescaledb_catalog.chunk c
           WHERE has_table_privilege('mes_app', format('%I.%I', c.schema_name, c.table_name),
                                     'SELECT, INSERT, UPDATE, DELETE')""").fetchall()
    assert reachable == []


def test_retention_drops_old_chunks(app: psycopg.Connection, database: TestDatabase,
                                    tenants: Tenants) -> None:
    a = tenants.a
    m, p = a.machines["a2"], a.machine_plant["a2"]
    old, recent = HOUR - timedelta(days=120), HOUR - timedelta(days=1)  # drop_after: 90 days
    with tenant_transaction(app, Tenant(a.id)):
        write_staged(app, "machine_telemetry",
                     [(a.id, p, m, "retention", ts, 1.0) for ts in (old, recent)])
    before = chunks(database, "machine_telemetry")

    run_policy(database, "policy_retention", "machine_telemetry")

    after = chunks(database, "machine_telemetry")
    assert len(after) < len(before)
    with tenant_transaction(app, Tenant(a.id)):
        kept = app.execute("SELECT ts FROM mes.v_machine_telemetry WHERE tag = 'retention'")
        assert [ts for (ts,) in kept] == [recent]


def _plain_time_in_state(conn: psycopg.Connection) -> None:
    """pg_temp.v_machine_state_hourly: the tenant view of 0006 over the plain path's
    aggregate of 0005 (taken from the files), on this session's data."""
    plain = (migrations.SQL_DIR / "0005_timeseries_storage.plain.sql").read_text()
    select = re.search(r"CREATE VIEW mes\.machine_state_hourly_agg AS(.*?);", plain, re.S)
    assert select is not None
    conn.execute(f"CREATE TEMPORARY VIEW machine_state_hourly_agg AS {select[1]}")
    row = conn.execute("SELECT pg_get_viewdef('mes.v_machine_state_hourly')").fetchone()
    assert row is not None and "mes.machine_state_hourly_agg" in row[0]
    tenant_view = row[0].replace("mes.machine_state_hourly_agg", "pg_temp.machine_state_hourly_agg")
    conn.execute(f"CREATE TEMPORARY VIEW v_machine_state_hourly AS {tenant_view}")


def test_continuous_aggregate_matches_plain_view(app: psycopg.Connection,
                                                 database: TestDatabase,
                                                 tenants: Tenants) -> None:
    """Row for row, over the hours the refresh policy keeps (and all hours after a backfill
    refresh). The tenants' seed rows lie months back, outside the refresh window."""
    a = tenants.a
    samples = status_samples(tenants, LATE - timedelta(hours=6))
    with tenant_transaction(app, Tenant(a.id)):
        write_staged(app, "machine_status", samples)
    run_policy(database, "policy_compression", "machine_status_history")
    run_policy(database, "policy_refresh_continuous_aggregate", "machine_state_hourly_agg")
    window = HOUR - timedelta(days=21)

    def both(conn: psycopg.Connection, tenant: Tenant, since: datetime) -> tuple[list, list]:
        query = ("SELECT bucket, organization_id, plant_id, machine_id, state, seconds "
                 "FROM {} WHERE bucket >= %s ORDER BY 1, 2, 3, 4, 5")
        with conn.transaction():
            conn.execute(SET_TENANT_SQL, tenant.params())
            agg = conn.execute(query.format("mes.v_machine_state_hourly"), (since,)).fetchall()
            plain = conn.execute(query.format("pg_temp.v_machine_state_hourly"),
                                 (since,)).fetchall()
        return agg, plain

    with database.superuser(autocommit=True) as conn:
        _plain_time_in_state(conn)
        materialised = conn.execute(
            "SELECT format('%I.%I', materialization_hypertable_schema, "
            "materialization_hypertable_name) FROM timescaledb_information.continuous_aggregates "
            "WHERE view_name = 'machine_state_hourly_agg'").fetchone()
        assert materialised is not None
        stored = conn.execute(f"SELECT count(*) FROM {materialised[0]}").fetchone()
        assert stored is not None and stored[0] >= 3  # the three hours above, at least
        for tenant in (Tenant(a.id), Tenant(a.id, plant_id=tenants.a2), Tenant(tenants.b.id)):
            agg, plain = both(conn, tenant, window)
            assert agg == plain, tenant
        assert both(conn, Tenant(a.id), window)[0], "the comparison must cover rows"

        # A late row in a materialised, compressed hour shows once its refresh has run.
        m, p = a.machines["a1"], a.machine_plant["a1"]
        late = (a.id, p, m, samples[0][3] + timedelta(minutes=5), "blocked", None)
        with tenant_transaction(app, Tenant(a.id)):
            assert write_staged(app, "machine_status", [late]) == 1
        agg, plain = both(conn, Tenant(a.id), window)
        assert agg != plain
        run_policy(database, "policy_refresh_continuous_aggregate", "machine_state_hourly_agg")
        agg, plain = both(conn, Tenant(a.id), window)
        assert agg == plain
        assert any(state == "blocked" for *_, state, _ in agg)

        # Rows older than the window (a backfill) need the refresh docs/operations.md gives.
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        agg, plain = both(conn, Tenant(a.id), epoch)
        assert agg != plain
        conn.execute(f"SET ROLE {migrations.OWNER_ROLE}")
        conn.execute("CALL refresh_continuous_aggregate('mes.machine_state_hourly_agg', "
                     "NULL, NULL)")
        conn.execute("RESET ROLE")
        for tenant in (Tenant(a.id), Tenant(a.id, plant_id=tenants.a2), Tenant(tenants.b.id)):
            agg, plain = both(conn, tenant, epoch)
            assert agg == plain, tenant
