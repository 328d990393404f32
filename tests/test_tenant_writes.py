"""The time-series write path (COPY -> staging -> write function) and attempts to escape RLS,
all through the application role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import msgspec
import psycopg
import pytest
from psycopg import errors, sql

from core.staging import MACHINE_FIELD, STAGING, STAGING_OF, write_staged
from core.tenancy import Tenant, tenant_transaction
from core.wire import RECORD_KINDS, Kind
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import T0, Tenants
from tests.wire_samples import sample_record


@pytest.fixture
def app(database: TestDatabase) -> Iterator[psycopg.Connection]:
    with database.app() as conn:
        yield conn


def status_rows(org, plant_code: str, start_minute: int, n: int) -> list[tuple]:
    machine, plant = org.machines[plant_code], org.machine_plant[plant_code]
    return [(org.id, plant, machine, T0 + timedelta(days=1, minutes=start_minute + i), "idle",
             None) for i in range(n)]


def view_count(conn: psycopg.Connection, tenant: Tenant, view: str) -> int:
    with tenant_transaction(conn, tenant):
        row = conn.execute(f"SELECT count(*) FROM mes.{view}").fetchone()
    return int(row[0]) if row else 0


def test_staging_columns_match_sql(app: psycopg.Connection, tenants: Tenants) -> None:
    """core.staging's columns and types are the ones mes.open_staging creates, in its order."""
    for kind, spec in STAGING.items():
        with tenant_transaction(app, Tenant(tenants.a.id)):
            app.execute("SELECT mes.open_staging(%s)", (kind,))
            cols = app.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
                "ORDER BY attnum", (f"pg_temp.stage_{kind}",)).fetchall()
            # Our short names (timestamptz, float8) in the catalog's spelling.
            ours = [(c, app.execute("SELECT format_type(%s::regtype, NULL)", (t,)).fetchone()[0])
                    for c, t in zip(spec.columns, spec.types, strict=True)]
        assert cols == ours, kind


@pytest.mark.parametrize("kind", RECORD_KINDS, ids=str)
def test_every_field_of_a_record_lands_in_its_column(app: psycopg.Connection,
                                                     tenants: Tenants, kind: Kind) -> None:
    """A record through its row builder, COPY and the write function reads back field by
    field from the kind's view: the builder, the staging table and the write function agree."""
    a = tenants.a
    spec = STAGING_OF[kind]
    record = sample_record(spec.record_type, T0 + timedelta(days=6))
    m, p = a.machines["a1"], a.machine_plant["a1"]
    fields = [f.name for f in msgspec.structs.fields(record) if f.name != MACHINE_FIELD]
    key = "event_id" if "event_id" in fields else "ts"
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, spec.name, [spec.row(record, a.id, p, m)]) == 1
        got = app.execute(
            sql.SQL("SELECT {} FROM {} WHERE machine_id = %s AND {} = %s").format(
                sql.SQL(", ").join(map(sql.Identifier, fields)),
                sql.Identifier("mes", f"v_{spec.table}"), sql.Identifier(key)),
            (m, getattr(record, key))).fetchall()
    assert got == [tuple(getattr(record, f) for f in fields)]


def test_copy_then_write_lands_rows_once(app: psycopg.Connection, tenants: Tenants) -> None:
    a = tenants.a
    rows = status_rows(a, "a1", 0, 500)
    before = view_count(app, Tenant(a.id), "v_machine_status_history")
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "machine_status", rows) == 500
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "machine_status", rows) == 0  # a replay writes nothing
    assert view_count(app, Tenant(a.id), "v_machine_status_history") == before + 500


def test_every_kind_writes_under_plant_context(app: psycopg.Connection,
                                                tenants: Tenants) -> None:
    a = tenants.a
    m, p = a.machines["a2"], a.machine_plant["a2"]
    ts = T0 + timedelta(days=2)
    rows = {
        "machine_status": [(a.id, p, m, ts, "fault", "E42")],
        "downtime_event": [(a.id, p, m, uuid.uuid4(), ts, None, "fault", "E42", "unplanned",
                            None, None)],
        "machine_counter": [(a.id, p, m, "cycles", ts, 1234.0)],
        "machine_telemetry": [(a.id, p, m, "speed", ts, 99.5)],
    }
    with tenant_transaction(app, Tenant(a.id, plant_id=p, user_id=a.users["a2"])):
        for kind, batch in rows.items():
            assert write_staged(app, kind, batch) == 1, kind


def test_downtime_upsert_end_before_start_is_kept(app: psycopg.Connection,
                                                  tenants: Tenants) -> None:
    a = tenants.a
    m, p = a.machines["a1"], a.machine_plant["a1"]
    event, start = uuid.uuid4(), T0 + timedelta(days=3)
    end = start + timedelta(seconds=42)
    end_row = (a.id, p, m, event, start, end, "fault", "E7", "unplanned", False, True)
    start_row = (a.id, p, m, event, start, None, "fault", "E7", "unplanned", None, None)
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "downtime_event", [end_row]) == 1
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "downtime_event", [start_row]) == 0  # changes nothing
        got = app.execute("SELECT ended_at, micro_stop, truncated FROM mes.v_downtime_event "
                          "WHERE event_id = %s", (event,)).fetchall()
    assert got == [(end, False, True)]
    # Start then end in one batch: one row, closed.
    event2 = uuid.uuid4()
    with tenant_transaction(app, Tenant(a.id)):
        n = write_staged(app, "downtime_event", [
            (a.id, p, m, event2, start, None, "fault", None, "unplanned", None, None),
            (a.id, p, m, event2, start, end, "fault", "E9", "unplanned", True, False)])
        got = app.execute("SELECT ended_at, reason_code FROM mes.v_downtime_event "
                          "WHERE event_id = %s", (event2,)).fetchall()
    assert n == 1 and got == [(end, "E9")]
    # A reason that arrives after the start (the edge re-sends the open event) is taken;
    # a replay of the bare start does not erase it.
    event3 = uuid.uuid4()
    bare = (a.id, p, m, event3, start, None, "fault", None, "unplanned", None, None)
    with tenant_transaction(app, Tenant(a.id)):
        write_staged(app, "downtime_event", [bare])
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "downtime_event", [(*bare[:7], "E3", *bare[8:])]) == 1
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "downtime_event", [bare]) == 0
        got = app.execute("SELECT ended_at, reason_code FROM mes.v_downtime_event "
                          "WHERE event_id = %s", (event3,)).fetchall()
    assert got == [(None, "E3")]


@pytest.mark.parametrize("case", ["other_org_row", "other_org_machine", "other_plant",
                                  "no_context", "machine_plant_mismatch"])
def test_write_functions_refuse_rows_outside_the_tenant(app: psycopg.Connection,
                                                        tenants: Tenants, case: str) -> None:
    a, b = tenants.a, tenants.b
    good = status_rows(a, "a1", 10_000, 3)
    bad = {
        "other_org_row": status_rows(b, "b1", 10_000, 1),
        "other_org_machine": [(a.id, a.machine_plant["a1"], b.machines["b1"], T0, "idle", None)],
        "other_plant": status_rows(a, "a2", 10_000, 1),
        "no_context": [],
        "machine_plant_mismatch": [(a.id, a.plants["a2"], a.machines["a1"], T0, "idle", None)],
    }[case]
    tenant = {"other_plant": Tenant(a.id, plant_id=a.plants["a1"])}.get(case, Tenant(a.id))
    before = view_count(app, Tenant(a.id), "v_machine_status_history")
    with pytest.raises(errors.InsufficientPrivilege, match="outside the tenant context"):
        if case == "no_context":
            with app.transaction():
                write_staged(app, "machine_status", good)
        else:
            with tenant_transaction(app, tenant):
                write_staged(app, "machine_status", good + bad)
    assert view_count(app, Tenant(a.id), "v_machine_status_history") == before


def test_forged_staging_table_is_refused(app: psycopg.Connection, tenants: Tenants) -> None:
    b = tenants.b
    with pytest.raises(errors.InsufficientPrivilege, match=r"not made by mes\.open_staging"), \
            tenant_transaction(app, Tenant(b.id)):
        app.execute("CREATE TEMP TABLE stage_machine_status (organization_id uuid, "
                    "plant_id uuid, machine_id uuid, ts timestamptz, state text, "
                    "reason_code text) ON COMMIT DROP")
        app.execute("SELECT mes.write_machine_status()")


@pytest.mark.parametrize("ddl", [
    "ALTER TABLE pg_temp.stage_machine_status ADD COLUMN x int",
    "CREATE INDEX ON pg_temp.stage_machine_status ((length(state)))",
    "CREATE TRIGGER t BEFORE INSERT ON pg_temp.stage_machine_status "
    "FOR EACH ROW EXECUTE FUNCTION mes.touch_row()",
], ids=["add-column", "create-index", "create-trigger"])
def test_staging_table_cannot_be_altered_by_the_app(app: psycopg.Connection,
                                                    tenants: Tenants, ddl: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege), \
            tenant_transaction(app, Tenant(tenants.a.id)):
        app.execute("SELECT mes.open_staging('machine_status')")
        app.execute(ddl)


@pytest.mark.parametrize("statement", [
    "SET ROLE mes_owner",
    "SET SESSION AUTHORIZATION postgres",
    "ALTER TABLE mes.machines DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE mes.machines NO FORCE ROW LEVEL SECURITY",
    "DROP POLICY tenant_isolation ON mes.machines",
    "CREATE POLICY open ON mes.machines USING (true)",
    "ALTER ROLE mes_app BYPASSRLS",
    "CREATE FUNCTION mes.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE VIEW mes.all_status AS SELECT * FROM mes.machine_status_history",
    "GRANT SELECT ON mes.machine_status_history TO mes_app",
    "CREATE OR REPLACE FUNCTION mes.tenant_org() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid'",
    "SELECT * FROM mes.machine_state_hourly_agg",
    "SELECT * FROM mes.dead_letters",
    "SELECT mes._check_staged_tenant('pg_class'::regclass)",
])
def test_app_role_cannot_escape(app: psycopg.Connection, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege), app.transaction():
        app.execute(statement)


def test_row_security_off_is_an_error_not_a_bypass(app: psycopg.Connection,
                                                   tenants: Tenants) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"), \
            app.transaction():
        app.execute("SET LOCAL row_security = off")
        app.execute("SELECT count(*) FROM mes.machines")


def test_reset_context_sees_nothing(app: psycopg.Connection, tenants: Tenants) -> None:
    with tenant_transaction(app, Tenant(tenants.a.id)):
        assert app.execute("SELECT count(*) FROM mes.machines").fetchone() != (0,)
        app.execute("RESET app.org_id")
        assert app.execute("SELECT count(*) FROM mes.machines").fetchone() == (0,)
        assert app.execute("SELECT count(*) FROM mes.v_machine_counter").fetchone() == (0,)


def test_context_does_not_outlive_the_transaction(app: psycopg.Connection,
                                                  tenants: Tenants) -> None:
    with tenant_transaction(app, Tenant(tenants.a.id)):
        pass
    assert app.execute("SELECT count(*) FROM mes.machines").fetchone() == (0,)
    app.rollback()


def test_leaky_function_sees_only_own_rows(app: psycopg.Connection, tenants: Tenants) -> None:
    """A cheap function of the caller's own, RAISE NOTICE-ing what it is shown, must never be
    shown another tenant's row before the tenant filter (security_barrier views, RLS)."""
    seen: list[str] = []
    app.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
    with tenant_transaction(app, Tenant(tenants.a.id)):
        app.execute("""CREATE FUNCTION pg_temp.leak(x uuid) RETURNS boolean
                       LANGUAGE plpgsql COST 0.0000001 AS
                       $$ BEGIN RAISE NOTICE 'leak %', x; RETURN true; END $$""")
        app.execute("SELECT * FROM mes.v_machine_status_history "
                    "WHERE pg_temp.leak(organization_id)").fetchall()
        app.execute("SELECT * FROM mes.machines WHERE pg_temp.leak(organization_id)").fetchall()
        app.execute("SELECT * FROM mes.v_machine_state_hourly "
                    "WHERE pg_temp.leak(organization_id)").fetchall()
    assert seen, "the probe function never ran"
    assert all(msg == f"leak {tenants.a.id}" for msg in seen), set(seen)


def test_statistics_do_not_leak_other_tenants(database: TestDatabase, app: psycopg.Connection,
                                              tenants: Tenants) -> None:
    with database.superuser(autocommit=True) as su:
        su.execute("ANALYZE mes.machines")
    rows = app.execute("SELECT attname FROM pg_stats WHERE schemaname = 'mes' "
                       "AND tablename IN ('machines', 'machine_status_history')").fetchall()
    assert rows == []


def test_lookup_gateway_returns_identity_only(app: psycopg.Connection, tenants: Tenants) -> None:
    rows = app.execute("SELECT * FROM mes.lookup_gateway('gw-b1')").fetchall()
    assert len(rows) == 1
    _gateway_id, org, plant, org_code, plant_code, active = rows[0]
    assert (org, plant, org_code, plant_code, active) == (
        tenants.b.id, tenants.b.plants["b1"], "org-b", "b1", True)
    assert app.execute("SELECT * FROM mes.lookup_gateway('nope')").fetchall() == []
    # The lookup does not open the registry itself.
    assert app.execute("SELECT count(*) FROM mes.gateways").fetchone() == (0,)


def test_staged_rows_never_outlive_their_transaction(app: psycopg.Connection,
                                                     tenants: Tenants) -> None:
    a = tenants.a
    with pytest.raises(RuntimeError), tenant_transaction(app, Tenant(a.id)):
        app.execute("SELECT mes.open_staging('machine_status')")
        with app.cursor().copy(STAGING["machine_status"].copy_sql) as copy:
            copy.set_types(list(STAGING["machine_status"].types))
            copy.write_row(status_rows(a, "a1", 20_000, 1)[0])
        raise RuntimeError("abandon the batch")
    with tenant_transaction(app, Tenant(a.id)):
        app.execute("SELECT mes.open_staging('machine_status')")
        with app.cursor().copy(STAGING["machine_status"].copy_sql) as copy:
            copy.set_types(list(STAGING["machine_status"].types))
            copy.write_row(status_rows(a, "a1", 20_001, 1)[0])
    with tenant_transaction(app, Tenant(a.id)):
        app.execute("SELECT mes.open_staging('machine_status')")
        assert app.execute("SELECT count(*) FROM pg_temp.stage_machine_status").fetchone() == (0,)
        assert app.execute("SELECT mes.write_machine_status()").fetchone() == (0,)


def test_two_batches_of_one_kind_in_one_transaction(app: psycopg.Connection,
                                                    tenants: Tenants) -> None:
    a = tenants.a
    first, second = status_rows(a, "a1", 30_000, 3), status_rows(a, "a1", 30_003, 2)
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, "machine_status", first) == 3
        assert write_staged(app, "machine_status", second) == 2  # the first batch is not staged
        assert app.execute("SELECT count(*) FROM pg_temp.stage_machine_status").fetchone() \
            == (2,)


def test_a_batch_partly_stored_lands_the_rest_and_announces_what_landed(
        app: psycopg.Connection, database: TestDatabase, tenants: Tenants) -> None:
    """sql/0016: a batch none of whose keys is stored is inserted plainly; one that repeats a
    stored key (a replay) or a key of its own falls back to ON CONFLICT DO NOTHING. Both ways
    land each new row once and announce each machine's newest landed state."""
    a = tenants.a
    rows = status_rows(a, "a1", 40_000, 5)
    fresh = [(*r[:4], "running", None) for r in status_rows(a, "a1", 40_005, 2)]
    with database.app(autocommit=True) as listener:
        listener.execute("LISTEN mes_stream")
        with tenant_transaction(app, Tenant(a.id)):
            assert write_staged(app, "machine_status", rows[:3]) == 3  # nothing stored: plain
        # Two stored, two new, one new twice in the batch itself: only the new ones land.
        with tenant_transaction(app, Tenant(a.id)):
            assert write_staged(app, "machine_status",
                                rows[1:] + fresh + fresh[1:]) == 4
        with tenant_transaction(app, Tenant(a.id)):
            assert write_staged(app, "machine_status", rows) == 0
        announced = [msgspec.json.decode(n.payload)["row"]
                     for n in listener.notifies(timeout=1, stop_after=3)]
    newest = [rows[2][3], fresh[1][3]]
    assert [(n["machine_id"], n["state"]) for n in announced] == [
        (str(a.machines["a1"]), "idle"), (str(a.machines["a1"]), "running")]
    assert [n["ts"] for n in announced] == [
        app.execute("SELECT to_jsonb(%s::timestamptz)", (t,)).fetchone()[0] for t in newest]
    with tenant_transaction(app, Tenant(a.id)):
        assert app.execute("SELECT count(*) FROM mes.v_machine_status_history WHERE "
                           "machine_id = %s AND ts >= %s", (a.machines["a1"], rows[0][3])
                           ).fetchone() == (7,)


@pytest.mark.parametrize("kind", ["machine_counter", "machine_telemetry"])
def test_a_replayed_sample_batch_lands_only_its_new_rows(app: psycopg.Connection,
                                                         tenants: Tenants, kind: str) -> None:
    a = tenants.a
    machine, plant = a.machines["a1"], a.machine_plant["a1"]
    rows = [(a.id, plant, machine, "t1", T0 + timedelta(days=2, seconds=i), float(i))
            for i in range(6)]
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, kind, rows[:4]) == 4
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, kind, rows[2:]) == 2
    with tenant_transaction(app, Tenant(a.id)):
        assert write_staged(app, kind, rows) == 0
