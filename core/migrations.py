"""Apply the ordered SQL files of `sql/` and record what was applied.

Files are named `NNNN_name.sql`; a step that differs between the TimescaleDB and the plain
PostgreSQL paths comes as a pair `NNNN_name.timescaledb.sql` / `NNNN_name.plain.sql`, and the
runner takes the one for the path this database is on (TimescaleDB when the extension is
installed or loadable). Each file runs in its own transaction, as `mes_owner` unless its first
line says `-- mes:as-connecting-user`. The record lives in `public.mes_schema_migrations`
(version, name, path, checksum); a second run applies nothing and says so, and a file changed
after it was applied is refused rather than silently skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from core.errors import UserFacingError

SQL_DIR = Path(os.environ.get("MES_SQL_DIR", Path(__file__).resolve().parents[1] / "sql"))
OWNER_ROLE = "mes_owner"
APP_ROLE = "mes_app"
AS_CONNECTING_USER = "-- mes:as-connecting-user"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(timescaledb|plain))?\.sql$")
_LOCK_KEY = 0x6D65735F6D6967  # "mes_mig": one migrator at a time per database


class MigrationError(UserFacingError):
    """The migrations cannot be applied as they stand."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    variant: str | None  # "timescaledb", "plain" or None (both paths)

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def as_owner(self) -> bool:
        return not self.sql.lstrip().startswith(AS_CONNECTING_USER)


@dataclass
class MigrationReport:
    timeseries_path: str
    applied: list[Migration] = field(default_factory=list)
    already_applied: int = 0


def discover(sql_dir: Path = SQL_DIR) -> dict[int, dict[str | None, Migration]]:
    """Every migration file by version and variant; refuses stray or duplicate names."""
    found: dict[int, dict[str | None, Migration]] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        m = _FILE_RE.match(path.name)
        if not m:
            raise MigrationError(f"{path}: not a migration name (NNNN_name[.variant].sql)")
        version, name, variant = int(m[1]), m[2], m[3]
        slot = found.setdefault(version, {})
        if variant in slot or (variant is None and slot) or (variant and None in slot):
            raise MigrationError(f"{path}: version {version:04d} is defined twice")
        slot[variant] = Migration(version, name, path, variant)
    for version, slot in found.items():
        if None not in slot and set(slot) != {"timescaledb", "plain"}:
            raise MigrationError(f"version {version:04d} needs both .timescaledb and .plain files")
    return found


def timescaledb_available(conn: psycopg.Connection) -> bool:
    """Installed in this database, or installable because the server preloads it."""
    row = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
               OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
                   AND current_setting('shared_preload_libraries') LIKE '%%timescaledb%%')"""
    ).fetchone()
    return bool(row and row[0])


def _ensure_record_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS public.mes_schema_migrations (
               version     integer PRIMARY KEY,
               name        text NOT NULL,
               path        text NOT NULL,
               checksum    text NOT NULL,
               applied_at  timestamptz NOT NULL DEFAULT now(),
               applied_by  text NOT NULL DEFAULT session_user)"""
    )
    conn.execute("REVOKE ALL ON public.mes_schema_migrations FROM PUBLIC")


def applied_versions(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """version -> (checksum, path) of what this database has applied; empty before the first."""
    exists = conn.execute("SELECT to_regclass('public.mes_schema_migrations')").fetchone()
    if not exists or exists[0] is None:
        return {}
    rows = conn.execute("SELECT version, checksum, path FROM public.mes_schema_migrations")
    return {v: (c, p) for v, c, p in rows}


def plan(conn: psycopg.Connection, sql_dir: Path = SQL_DIR) -> tuple[str, list[Migration], int]:
    """(time-series path, pending migrations in order, number already applied)."""
    found = discover(sql_dir)
    done = applied_versions(conn)
    recorded = {p for _, p in done.values() if p in ("timescaledb", "plain")}
    ts_path = recorded.pop() if recorded else (
        "timescaledb" if timescaledb_available(conn) else "plain"
    )
    pending = []
    for version in sorted(found):
        slot = found[version]
        mig = slot.get(None) or slot[ts_path]
        if version in done:
            if done[version][0] != mig.checksum:
                raise MigrationError(
                    f"{mig.path.name} changed after it was applied to this database; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        pending.append(mig)
    return ts_path, pending, len(done)


def migrate(
    url: str, sql_dir: Path = SQL_DIR, progress: Callable[[str], None] = lambda _msg: None
) -> MigrationReport:
    """Apply every pending migration to the database at `url`, each in its own transaction."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as e:
        raise MigrationError(
            f"cannot connect to the database to migrate it ({e}). Check database.url "
            "(MES_DATABASE__URL or DATABASE_URL) and that the server is running."
        ) from None
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            _ensure_record_table(conn)
            ts_path, pending, done = plan(conn, sql_dir)
            report = MigrationReport(timeseries_path=ts_path, already_applied=done)
            for mig in pending:
                progress(f"applying {mig.path.name}")
                _apply(conn, mig)
                report.applied.append(mig)
            return report
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _apply(conn: psycopg.Connection, mig: Migration) -> None:
    try:
        with conn.transaction():
            if mig.as_owner:
                conn.execute(f"SET LOCAL ROLE {OWNER_ROLE}")
            conn.execute(mig.sql.encode())
            if mig.as_owner:
                conn.execute("RESET ROLE")
            conn.execute(
                "INSERT INTO public.mes_schema_migrations (version, name, path, checksum) "
                "VALUES (%s, %s, %s, %s)",
                (mig.version, mig.name, mig.variant or "common", mig.checksum),
            )
    except psycopg.Error as e:
        diag = e.diag
        where = f" ({diag.context.strip()})" if diag and diag.context else ""
        raise MigrationError(f"{mig.path.name} failed and was rolled back: {e}{where}") from None


def set_app_password(url: str, password: str) -> None:
    """Give the application role its login password (needs CREATEROLE or a superuser)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(password)
            )
        )
