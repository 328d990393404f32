"""Tenant isolation through the application role, for every relation found in the catalog.

Relations are not listed by hand: every table and view of schema `mes` with an
`organization_id` column is checked, so a new table is covered (and must be seeded by
tests/fixtures/tenants.py, or the coverage assertion fails).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors

from core.staging import TIME_SERIES_TABLES
from core.tenancy import SET_TENANT_SQL, Tenant
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants

TIME_SERIES = TIME_SERIES_TABLES


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str  # 'r' table, 'v' view, 'm' materialized view
    has_plant: bool
    rls: bool
    forced: bool

    @property
    def plant_column(self) -> str | None:
        # A plant is its own plant: the plants table is scoped by its id.
        if self.name == "plants":
            return "id"
        return "plant_id" if self.has_plant else None


@pytest.fixture(scope="module")
def relations(database: TestDatabase, tenants: Tenants) -> list[Relation]:
    with database.superuser() as conn:
        rows = conn.execute(
            """SELECT c.relname, c.relkind,
                      EXISTS (SELECT 1 FROM pg_attribute p WHERE p.attrelid = c.oid
                              AND p.attname = 'plant_id' AND NOT p.attisdropped),
                      c.relrowsecurity, c.relforcerowsecurity
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'organization_id'
               WHERE n.nspname = 'mes' AND c.relkind IN ('r', 'p', 'v', 'm')
               ORDER BY c.relname"""
        ).fetchall()
    return [Relation(*r) for r in rows]


@pytest.fixture
def app(database: TestDatabase) -> Iterator[psycopg.Connection]:
    with database.app() as conn:
        yield conn


def _privileges(conn: psycopg.Connection, rel: str) -> set[str]:
    out = set()
    for priv in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"):
        row = conn.execute("SELECT has_table_privilege('mes_app', %s, %s)",
                           (f"mes.{rel}", priv)).fetchone()
        if row and row[0]:
            out.add(priv)
    return out


def _set(conn: psycopg.Connection, tenant: Tenant | None) -> None:
    if tenant is not None:
        conn.execute(SET_TENANT_SQL, tenant.params())


def _superuser_count(db: TestDatabase, rel: Relation, where: str, params: tuple,
                     org: uuid.UUID) -> int:
    """The truth, counted as superuser; views filter by the context, so set it to `org`."""
    with db.superuser() as conn:
        if rel.kind == "v":
            _set(conn, Tenant(org))
        row = conn.execute(f"SELECT count(*) FROM mes.{rel.name} WHERE {where}", params).fetchone()
    return int(row[0]) if row else 0


def test_catalog_finds_the_tenant_relations(relations: list[Relation]) -> None:
    names = {r.name for r in relations}
    assert {"machines", "users", "plants", "ncr", "pm_tasks", "gateways"} <= names
    assert names >= TIME_SERIES
    assert {f"v_{t}" for t in TIME_SERIES} | {"v_machine_state_hourly"} <= names


def test_every_relation_is_seeded_for_both_orgs(database: TestDatabase, tenants: Tenants,
                                                relations: list[Relation]) -> None:
    unseeded = []
    for rel in relations:
        for org in (tenants.a, tenants.b):
            if not _superuser_count(database, rel, "organization_id = %s", (org.id,), org.id):
                unseeded.append(f"{rel.name} ({org.code})")
    assert not unseeded, f"seed these in tests/fixtures/tenants.py: {unseeded}"


def test_relational_tables_force_rls_and_time_series_are_unreachable(
    app: psycopg.Connection, relations: list[Relation]
) -> None:
    for rel in relations:
        if rel.kind not in ("r", "p"):
            continue
        privileges = _privileges(app, rel.name)
        if rel.name in TIME_SERIES:
            assert not privileges, f"mes_app has {privileges} on time series {rel.name}"
            assert not rel.rls, f"{rel.name}: time series must not use RLS (docs/tenancy.md)"
            continue
        # Any other tenant table the role can reach must be RLS enabled AND forced.
        if privileges:
            assert rel.rls and rel.forced, f"{rel.name}: RLS enabled={rel.rls} forced={rel.forced}"


def test_no_privilege_on_timescaledb_chunks(app: psycopg.Connection) -> None:
    rows = app.execute(
        """SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n
           ON n.oid = c.relnamespace
           WHERE n.nspname IN ('_timescaledb_internal', '_timescaledb_functions')
             AND c.relkind IN ('r', 'p', 'v', 'm')
             AND (has_table_privilege('mes_app', c.oid, 'SELECT')
                  OR has_table_privilege('mes_app', c.oid, 'INSERT')
                  OR has_table_privilege('mes_app', c.oid, 'UPDATE')
                  OR has_table_privilege('mes_app', c.oid, 'DELETE'))"""
    ).fetchall()
    assert rows == []


def _readable(app: psycopg.Connection, relations: list[Relation]) -> list[Relation]:
    return [r for r in relations if "SELECT" in _privileges(app, r.name)]


def test_no_context_sees_no_rows(app: psycopg.Connection, relations: list[Relation]) -> None:
    readable = _readable(app, relations)
    assert len(readable) >= 17
    for rel in readable:
        with app.transaction():
            assert app.execute(f"SELECT count(*) FROM mes.{rel.name}").fetchone() == (0,), rel
        # A reset or emptied setting is "no tenant" too, never an error.
        with app.transaction():
            app.execute("SELECT set_config('app.org_id', '', true)")
            assert app.execute(f"SELECT count(*) FROM mes.{rel.name}").fetchone() == (0,), rel


def test_org_context_sees_only_its_rows(app: psycopg.Connection, database: TestDatabase,
                                        tenants: Tenants, relations: list[Relation]) -> None:
    for rel in _readable(app, relations):
        for org, other in ((tenants.a, tenants.b), (tenants.b, tenants.a)):
            with app.transaction():
                _set(app, Tenant(org.id))
                rows = app.execute(
                    f"SELECT organization_id, count(*) FROM mes.{rel.name} GROUP BY 1"
                ).fetchall()
            seen = dict(rows)
            assert set(seen) == {org.id}, f"{rel.name}: org {org.code} sees {set(seen)}"
            expected = _superuser_count(database, rel, "organization_id = %s", (org.id,), org.id)
            assert seen[org.id] == expected, rel.name
            assert other.id not in seen


def test_plant_context_sees_its_plant_and_org_wide_rows(
    app: psycopg.Connection, database: TestDatabase, tenants: Tenants, relations: list[Relation]
) -> None:
    checked = 0
    for rel in _readable(app, relations):
        col = rel.plant_column
        if col is None:
            continue
        with app.transaction():
            _set(app, Tenant(tenants.a.id, plant_id=tenants.a1))
            plants = {p for (p,) in app.execute(f"SELECT DISTINCT {col} FROM mes.{rel.name}")}
            count = app.execute(f"SELECT count(*) FROM mes.{rel.name}").fetchone()
        assert plants <= {tenants.a1, None}, f"{rel.name}: plant A1 context sees {plants}"
        expected = _superuser_count(
            database, rel, f"organization_id = %s AND ({col} IS NULL OR {col} = %s)",
            (tenants.a.id, tenants.a1), tenants.a.id)
        assert count == (expected,), rel.name
        hidden = _superuser_count(database, rel, f"{col} = %s", (tenants.a2,), tenants.a.id)
        assert hidden > 0, f"{rel.name}: seed a row in plant A2 so the test means something"
        checked += 1
    assert checked >= 15


def _row_of(database: TestDatabase, rel: str, org: uuid.UUID) -> dict:
    with database.superuser() as conn:
        row = conn.execute(
            f"SELECT row_to_json(t) FROM mes.{rel} t WHERE organization_id = %s LIMIT 1", (org,)
        ).fetchone()
    assert row is not None
    return row[0]


def test_cannot_write_another_orgs_rows(app: psycopg.Connection, database: TestDatabase,
                                        tenants: Tenants, relations: list[Relation]) -> None:
    a, b = tenants.a, tenants.b
    for rel in relations:
        privileges = _privileges(app, rel.name)
        if rel.kind == "v":
            assert privileges <= {"SELECT"}, f"view {rel.name} is writable: {privileges}"
            continue
        if rel.kind not in ("r", "p") or not privileges:
            continue
        if "UPDATE" in privileges:
            with app.transaction():
                _set(app, Tenant(a.id))
                cur = app.execute(f"UPDATE mes.{rel.name} SET organization_id = organization_id "
                                  "WHERE organization_id = %s", (b.id,))
                assert cur.rowcount == 0, f"{rel.name}: updated B's rows"
            # Moving one's own row into the other organization is refused.
            key = "id"
            with pytest.raises(errors.InsufficientPrivilege), app.transaction():
                _set(app, Tenant(a.id))
                app.execute(f"UPDATE mes.{rel.name} SET organization_id = %s "
                            f"WHERE {key} = %s", (b.id, _row_of(database, rel.name, a.id)[key]))
        if "DELETE" in privileges:
            with app.transaction():
                _set(app, Tenant(a.id))
                cur = app.execute(f"DELETE FROM mes.{rel.name} WHERE organization_id = %s",
                                  (b.id,))
                assert cur.rowcount == 0, f"{rel.name}: deleted B's rows"
        if "INSERT" in privileges:
            row = _row_of(database, rel.name, b.id)
            row["id"] = str(uuid.uuid4())
            with pytest.raises(errors.InsufficientPrivilege), app.transaction():
                _set(app, Tenant(a.id))
                app.execute(
                    f"INSERT INTO mes.{rel.name} SELECT * FROM "
                    f"json_populate_record(NULL::mes.{rel.name}, %s)", (json.dumps(row),))
        # And a plant context cannot write into another plant of its own organization.
        if "INSERT" in privileges and rel.plant_column == "plant_id":
            row = _row_of(database, rel.name, a.id)
            row["id"], row["plant_id"] = str(uuid.uuid4()), str(tenants.a2)
            with pytest.raises(errors.InsufficientPrivilege), app.transaction():
                _set(app, Tenant(a.id, plant_id=tenants.a1))
                app.execute(
                    f"INSERT INTO mes.{rel.name} SELECT * FROM "
                    f"json_populate_record(NULL::mes.{rel.name}, %s)", (json.dumps(row),))


@pytest.mark.parametrize("table", sorted(TIME_SERIES))
def test_time_series_tables_refuse_direct_access(app: psycopg.Connection, tenants: Tenants,
                                                 table: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege), app.transaction():
        _set(app, Tenant(tenants.a.id))
        app.execute(f"SELECT 1 FROM mes.{table} LIMIT 1")
    with pytest.raises(errors.InsufficientPrivilege), app.transaction():
        _set(app, Tenant(tenants.a.id))
        with app.cursor().copy(f"COPY mes.{table} FROM STDIN"):
            pass
