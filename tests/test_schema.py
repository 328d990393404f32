"""Migrations apply once, are recorded, and the schema they build agrees with the models."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from sqlalchemy import MetaData, create_engine, inspect
from sqlalchemy.dialects import postgresql

import core.models
from core import migrations
from core.db import sqlalchemy_url
from core.staging import STAGING, TIME_SERIES_TABLES
from tests.fixtures.database import TestDatabase


def run_mes(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mes.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_migrate_empty_database_then_nothing(empty_database: TestDatabase,
                                            timeseries_path: str) -> None:
    import os

    other = {"plain": "timescaledb", "timescaledb": "plain"}[timeseries_path]
    env = {**os.environ, "MES_DATABASE__URL": empty_database.superuser_url}
    first = run_mes("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    for path in sorted(migrations.SQL_DIR.glob("*.sql")):
        if not path.name.endswith(f".{other}.sql"):
            assert f"applying {path.name}" in first.stdout
    assert f".{other}.sql" not in first.stdout
    assert f"time series on the {timeseries_path} path" in first.stdout

    second = run_mes("db", "migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout
    assert "applying" not in second.stdout

    status = run_mes("db", "status", env=env)
    assert status.returncode == 0
    assert "0 pending" in status.stdout


def test_applied_migration_edited_is_refused(empty_database: TestDatabase, tmp_path) -> None:
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    for path in migrations.SQL_DIR.glob("*.sql"):
        (sql_dir / path.name).write_text(path.read_text())
    migrations.migrate(empty_database.superuser_url, sql_dir)
    edited = sql_dir / "0003_relational.sql"
    edited.write_text(edited.read_text() + "\n-- edited\n")
    with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
        migrations.migrate(empty_database.superuser_url, sql_dir)


def test_failed_migration_rolls_back_and_names_file(empty_database: TestDatabase,
                                                    tmp_path) -> None:
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    for path in migrations.SQL_DIR.glob("*.sql"):
        (sql_dir / path.name).write_text(path.read_text())
    (sql_dir / "0099_broken.sql").write_text("CREATE TABLE mes.x (a int);\nSELECT nope;\n")
    with pytest.raises(migrations.MigrationError, match=r"0099_broken\.sql failed"):
        migrations.migrate(empty_database.superuser_url, sql_dir)
    with empty_database.superuser() as conn:
        assert conn.execute("SELECT to_regclass('mes.x')").fetchone() == (None,)
        applied = migrations.applied_versions(conn)
    assert 99 not in applied and 6 in applied


def test_models_build_one_metadata() -> None:
    tables = core.models.Base.metadata.tables
    assert len(tables) == len({t.name for t in tables.values()})
    assert sum(1 for t in tables.values() if t.name == "users") == 1


def _type_name(t: object) -> str:
    return str(t.compile(dialect=postgresql.dialect())).upper()  # type: ignore[attr-defined]


def test_models_agree_with_migrated_schema(database: TestDatabase) -> None:
    engine = create_engine(sqlalchemy_url(database.superuser_url))
    try:
        reflected = MetaData(schema="mes")
        reflected.reflect(engine, schema="mes", views=False)
        insp = inspect(engine)
        views = set(insp.get_view_names(schema="mes"))
    finally:
        engine.dispose()
    models = core.models.Base.metadata
    model_tables = {t.name for t in models.tables.values()}
    db_tables = {t.name for t in reflected.tables.values()} - views
    assert model_tables == db_tables

    problems = []
    for name in sorted(model_tables):
        mt, dt = models.tables[f"mes.{name}"], reflected.tables[f"mes.{name}"]
        if set(mt.columns.keys()) != set(dt.columns.keys()):
            problems.append(f"{name}: columns differ: model {sorted(mt.columns.keys())} "
                            f"db {sorted(dt.columns.keys())}")
            continue
        for col in mt.columns:
            dcol = dt.columns[col.name]
            if _type_name(col.type) != _type_name(dcol.type):
                problems.append(f"{name}.{col.name}: type model {_type_name(col.type)} "
                                f"db {_type_name(dcol.type)}")
            if col.nullable != dcol.nullable:
                problems.append(f"{name}.{col.name}: nullable model {col.nullable} "
                                f"db {dcol.nullable}")
        if {c.name for c in mt.primary_key} != {c.name for c in dt.primary_key}:
            problems.append(f"{name}: primary keys differ")

        def fks(table):
            return sorted(
                (tuple(e.parent.name for e in fk.elements),
                 fk.elements[0].target_fullname.rsplit(".", 1)[0],
                 tuple(e.target_fullname.rsplit(".", 1)[1] for e in fk.elements))
                for fk in table.foreign_key_constraints
            )

        if fks(mt) != fks(dt):
            problems.append(f"{name}: foreign keys differ:\n  model {fks(mt)}\n  db    {fks(dt)}")
    assert not problems, "\n".join(problems)


def test_staging_columns_are_their_tables_columns(database: TestDatabase) -> None:
    """What the write functions move: every staging column of core.staging is a column of its
    time-series table, of the same type (and so of the model's: the test above)."""
    problems = []
    with database.superuser() as conn:
        for spec in STAGING.values():
            table = dict(conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (f"mes.{spec.table}",)).fetchall())
            for column, short in zip(spec.columns, spec.types, strict=True):
                row = conn.execute("SELECT format_type(%s::regtype, NULL)", (short,)).fetchone()
                staged = row[0] if row else None
                if table.get(column) != staged:
                    problems.append(f"{spec.name}.{column} ({staged}): {spec.table} has "
                                    f"{table.get(column, 'no such column')}")
    assert not problems, "\n".join(problems)


def test_every_tenant_table_indexes_organization_and_plant(database: TestDatabase) -> None:
    with database.superuser() as conn:
        rows = conn.execute(
            """SELECT c.relname, a.attname,
                      EXISTS (SELECT 1 FROM pg_index i
                              WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid
               WHERE n.nspname = 'mes' AND c.relkind IN ('r', 'p')
                 AND a.attname IN ('organization_id', 'plant_id')"""
        ).fetchall()
        nullability = dict(conn.execute(
            """SELECT table_name, is_nullable FROM information_schema.columns
               WHERE table_schema = 'mes' AND column_name = 'organization_id'"""
        ).fetchall())
    assert rows, "no tenant tables found"
    unindexed = [f"{t}.{c}" for t, c, indexed in rows if not indexed]
    assert not unindexed, f"tenant columns without an index leading with them: {unindexed}"
    views = {f"v_{t}" for t in TIME_SERIES_TABLES} | {"v_machine_state_hourly",
                                                      "machine_state_hourly_agg"}
    assert all(v == "NO" for t, v in nullability.items() if t not in views), nullability


def test_app_role_connects_but_owns_nothing(database: TestDatabase) -> None:
    with database.app() as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = current_user").fetchone()
        owned = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = 'mes_app'::regrole").fetchone()
    assert role == (False, False, False, False)
    assert owned == (0,)


def test_migrate_reports_unreachable_database() -> None:
    import os

    from mes.services.ports import free_port

    env = {**os.environ,
           "MES_DATABASE__URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"}
    out = run_mes("db", "migrate", env=env)
    assert out.returncode == 1
    assert "cannot connect to the database" in out.stderr
    assert "Traceback" not in out.stderr


def test_psycopg_connects_as_app(database: TestDatabase) -> None:
    with psycopg.connect(database.app_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("mes_app",)
