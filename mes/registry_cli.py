"""`mes registry apply|export|from-tagmap|broker-config`: the registry file and the database."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, make_sessions
from core.errors import UserFacingError
from core.registry.apply import apply_registry, export_registry
from core.registry.broker import broker_config, write_broker_files
from core.registry.model import dump_registry, load_registry
from core.settings import load_settings
from mes.registry_from_tagmap import registry_from_tagmaps


def register(sub: argparse._SubParsersAction) -> None:
    reg = sub.add_parser("registry", help="organizations, plants, users, gateways, machines")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")

    a = reg_sub.add_parser("apply", help="make the database match a registry file")
    a.add_argument("file", type=Path)
    a.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    a.add_argument("--prune", action="store_true",
                   help="deactivate what the file no longer lists (never deletes)")
    a.set_defaults(func=cmd_apply)

    e = reg_sub.add_parser("export", help="write the registry of organizations as a file")
    e.add_argument("--org", action="append", required=True, metavar="CODE",
                   help="organization code (repeat for several)")
    e.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    e.set_defaults(func=cmd_export)

    t = reg_sub.add_parser("from-tagmap", help="print the registry entries agent tag maps imply")
    t.add_argument("maps", type=Path, nargs="+", metavar="MAP")
    t.set_defaults(func=cmd_from_tagmap)

    b = reg_sub.add_parser("broker-config",
                           help="mosquitto password file and ACL: one account per gateway")
    b.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="folder for passwd, acl and secrets/ (new secrets, mode 0600)")
    b.add_argument("--rotate", action="append", default=[], metavar="ACCOUNT",
                   help="give this gateway (or service account) a new secret; repeatable")
    b.set_defaults(func=cmd_broker_config)


@contextlib.contextmanager
def app_sessions(config: str | None) -> Iterator[sessionmaker[Session]]:
    """Sessions of the application role (`database.app_url`, or derived from `database.url`)."""
    engine = make_engine(load_settings(config).database.application_url(),
                         pool_size=1, max_overflow=0)
    try:
        yield make_sessions(engine)
    finally:
        engine.dispose()


def cmd_apply(args: argparse.Namespace) -> int:
    registry = load_registry(args.file)
    with app_sessions(args.config) as sessions:
        plans = apply_registry(sessions, registry, prune=args.prune, dry_run=args.dry_run)
    for plan in plans:
        print("\n".join(plan.lines()))
    changes = sum(len(p.changes) for p in plans)
    if args.dry_run:
        print(f"dry run: {changes} change(s) planned, nothing written")
    elif changes:
        print(f"applied {changes} change(s) in {len(plans)} organization(s)")
    else:
        print("nothing to change: the database matches the file")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with app_sessions(args.config) as sessions:
        text = dump_registry(export_registry(sessions, args.org))
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


def cmd_from_tagmap(args: argparse.Namespace) -> int:
    print("# Registry entries implied by " + ", ".join(str(m) for m in args.maps) + ".")
    print("# Review the names marked (review), set each plant's timezone, then merge this into")
    print("# your registry file and run `mes registry apply FILE`.")
    print(dump_registry(registry_from_tagmaps(args.maps)), end="")
    return 0


def cmd_broker_config(args: argparse.Namespace) -> int:
    url = load_settings(args.config).database.url
    if not url:
        raise UserFacingError("database.url is not set: broker-config reads every "
                              "organization's gateways as the owner (MES_DATABASE__URL)")
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as e:
        raise UserFacingError(f"cannot connect to the database: {e}") from None
    with conn:
        config = broker_config(conn, rotate=tuple(args.rotate))
    written = write_broker_files(config, args.out)
    accounts = config.passwd.count("\n")
    print(f"wrote {args.out / 'passwd'} ({accounts} accounts) and {args.out / 'acl'}")
    for path in written:
        print(f"new secret for {path.stem}: {path} (mode 0600; hand it over, then delete it)")
    if not written:
        print("no new secrets: every account already had one (--rotate ACCOUNT makes a new one)")
    print("reload the broker to apply: kill -HUP $(pidof mosquitto)")
    return 0
