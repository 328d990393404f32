"""`mes ingest run` and `mes ingest dead-letters list|replay`."""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import get_args

import psycopg

from core import logging as mes_logging
from core.errors import UserFacingError
from core.settings import LogSettings, load_settings
from core.status_server import StatusServer
from ingest.settings import IngestSettings


def register(sub: argparse._SubParsersAction) -> None:
    """Add `mes ingest ...` to the `mes` parser."""
    ingest = sub.add_parser("ingest", help="central ingest: MQTT -> database")
    isub = ingest.add_subparsers(dest="ingest_command", required=True, metavar="COMMAND")
    run = isub.add_parser(
        "run", help="consume, validate, batch and write until stopped",
        description="Consume the gateways' messages, validate, batch and write them, until "
        "SIGTERM or SIGINT. The options below, as for `mes edge run`, override the settings "
        "of the same name (ingest.status_port, ingest.status_host, log.level, log.format).")
    # Defaults None: unset, the settings (file or MES_... environment) decide.
    run.add_argument("--status-port", type=int, metavar="PORT",
                     help="serve /health and /metrics here (default: ingest.status_port, none)")
    run.add_argument("--status-host", metavar="HOST",
                     help="address of the status endpoint (default: ingest.status_host, "
                     "127.0.0.1)")
    run.add_argument("--log-level", choices=_choices("level"), help="default: log.level, info")
    run.add_argument("--log-format", choices=_choices("format"),
                     help="default: log.format, json")
    run.set_defaults(func=cmd_run)
    dl = isub.add_parser("dead-letters", help="list or replay dead letters (owner's URL)")
    dsub = dl.add_subparsers(dest="dl_command", required=True, metavar="COMMAND")
    ls = dsub.add_parser("list", help="dead letters by reason, newest first")
    ls.add_argument("--reason")
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(func=cmd_dead_letters_list)
    rp = dsub.add_parser("replay", help="run chosen dead letters through the ingest again")
    group = rp.add_mutually_exclusive_group(required=True)
    group.add_argument("--id", type=int, nargs="+", dest="ids")
    group.add_argument("--reason")
    rp.set_defaults(func=cmd_dead_letters_replay)


def _choices(log_setting: str) -> tuple[str, ...]:
    """The values LogSettings allows for one of its fields (a Literal)."""
    return get_args(LogSettings.model_fields[log_setting].annotation)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the ingest until SIGTERM or SIGINT; 1 if its pipeline failed."""
    from ingest.service import IngestService

    settings = load_settings(args.config, IngestSettings)
    mes_logging.configure(args.log_level or settings.log.level,
                          args.log_format or settings.log.format)
    status_port = settings.ingest.status_port if args.status_port is None else args.status_port
    status_host = args.status_host or settings.ingest.status_host
    service = IngestService(settings)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status = None
    if status_port is not None:
        status = StatusServer(
            status_host, status_port, service.health, service.metrics.registry,
            setting="ingest.status_port" if args.status_port is None else "--status-port",
        ).start()
    service.start()
    while not stop.wait(1.0):
        if service.failure is not None:
            break
    service.stop()
    if status:
        status.stop()
    return 1 if service.failure else 0


def _owner(args: argparse.Namespace) -> tuple[IngestSettings, psycopg.Connection]:
    settings = load_settings(args.config, IngestSettings)
    try:
        return settings, psycopg.connect(settings.database.owner_url())
    except psycopg.OperationalError as e:
        raise UserFacingError(f"cannot connect to the database: {e}") from None


def cmd_dead_letters_list(args: argparse.Namespace) -> int:
    """Waiting dead letters: a count per reason, then the newest (of `--reason`)."""
    _, conn = _owner(args)
    with conn:
        summary = conn.execute(
            "SELECT reason, count(*), max(received_at) FROM mes.dead_letters "
            "WHERE replayed_at IS NULL GROUP BY reason ORDER BY count(*) DESC").fetchall()
        print("reason                       waiting  newest")
        for reason, n, newest in summary:
            print(f"{reason:28} {n:7}  {newest:%Y-%m-%d %H:%M:%S}")
        rows = conn.execute(
            "SELECT id, received_at, reason, topic, detail FROM mes.dead_letters "
            "WHERE replayed_at IS NULL AND (%(r)s::text IS NULL OR reason = %(r)s) "
            "ORDER BY id DESC LIMIT %(n)s", {"r": args.reason, "n": args.limit}).fetchall()
    print()
    for id_, at, reason, topic, detail in rows:
        print(f"#{id_} {at:%Y-%m-%d %H:%M:%S} {reason} {topic}\n    {detail[:200]}")
    return 0


def cmd_dead_letters_replay(args: argparse.Namespace) -> int:
    """Replay the chosen dead letters; 0 when every one was replayed."""
    from ingest.replay import replay

    settings, conn = _owner(args)
    with conn:
        where, params = (("id = ANY(%s)", (args.ids,)) if args.ids
                         else ("reason = %s", (args.reason,)))
        letters = conn.execute(
            f"SELECT id, topic, payload, payload_size FROM mes.dead_letters "
            f"WHERE replayed_at IS NULL AND {where} ORDER BY id", params).fetchall()
        outcomes = replay(settings, letters)
        done = [i for i, ok, _ in outcomes if ok]
        if done:
            conn.execute("UPDATE mes.dead_letters SET replayed_at = %s WHERE id = ANY(%s)",
                         (datetime.now(UTC), done))
    for id_, ok, what in outcomes:
        print(f"#{id_}: {'replayed' if ok else 'still refused'}: {what}")
    print(f"{len(done)} of {len(outcomes)} replayed")
    return 0 if len(done) == len(outcomes) else 1
