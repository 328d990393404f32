"""`mes db migrate` and `mes db status`."""

from __future__ import annotations

import argparse

import psycopg

from core import migrations
from core.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema: migrate, status")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    m = db_sub.add_parser("migrate", help="apply pending migrations from sql/")
    m.set_defaults(func=cmd_migrate)
    s = db_sub.add_parser("status", help="show applied and pending migrations")
    s.set_defaults(func=cmd_status)


def _owner_url(args: argparse.Namespace) -> str:
    return load_settings(args.config).database.owner_url()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    url = _owner_url(args)
    report = migrations.migrate(url, progress=print)
    if report.applied:
        print(f"applied {len(report.applied)} migration(s); time series on the "
              f"{report.timeseries_path} path"
              + (" (hypertables, compression, retention, continuous aggregate)"
                 if report.timeseries_path == "timescaledb" else
                 " (plain tables and a plain time-in-state view; TimescaleDB not available)"))
    else:
        print(f"nothing to apply: {report.already_applied} migration(s) already applied; "
              f"time series on the {report.timeseries_path} path")
    if settings.database.app_password:
        migrations.set_app_password(url, settings.database.app_password)
        print(f"password of role {migrations.APP_ROLE} set")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    url = _owner_url(args)
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as e:
        raise migrations.MigrationError(f"cannot connect to the database: {e}") from None
    with conn:
        ts_path, pending, done = migrations.plan(conn)
        for version, (_, path) in sorted(migrations.applied_versions(conn).items()):
            print(f"applied  {version:04d} ({path})")
    for mig in pending:
        print(f"pending  {mig.path.name}")
    print(f"{done} applied, {len(pending)} pending; time series on the {ts_path} path")
    return 0
