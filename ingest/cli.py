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
    ls = dsub.add_parser("list", help="dead letters by reason, newest first",
                         description="Waiting dead letters (not yet replayed): a count per "
                         "reason, then the newest. Times are ISO 8601 with their offset.")
    ls.add_argument("--reason")
    ls.add_argument("--limit", type=int, default=20)
    shown = ls.add_mutually_exclusive_group()
    shown.add_argument("--replayed", dest="shown", action="store_const", const="replayed",
                       default="waiting", help="the replayed letters instead of the waiting")
    shown.add_argument("--all", dest="shown", action="store_const", const="all",
                       help="waiting and replayed letters")
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
    maintenance = None
    if settings.maintenance.enabled:
        from ingest.maintenance.runner import open_runner

        maintenance = open_runner(settings.database, settings.maintenance)
        service.commit_observers.append(maintenance.on_commit)
        maintenance.start()
    service.start()
    while not stop.wait(1.0):
        if service.failure is not None:
            break
    service.stop()
    if maintenance:
        maintenance.stop()
    if status:
        status.stop()
    return 1 if service.failure else 0


def _owner(args: argparse.Namespace) -> tuple[IngestSettings, psycopg.Connection]:
    settings = load_settings(args.config, IngestSettings)
    try:
        return settings, psycopg.connect(settings.database.owner_url())
    except psycopg.OperationalError as e:
        raise UserFacingError(f"cannot connect to the database: {e}") from None


_SHOWN = {"waiting": "replayed_at IS NULL", "replayed": "replayed_at IS NOT NULL",
          "all": "true"}


def _at(t: datetime | None) -> str:
    return t.isoformat(timespec="seconds") if t else "-"


def cmd_dead_letters_list(args: argparse.Namespace) -> int:
    """Dead letters (waiting, `--replayed` or `--all`): a count per reason, then the newest
    (of `--reason`)."""
    _, conn = _owner(args)
    shown = _SHOWN[args.shown]
    with conn:
        summary = conn.execute(
            f"SELECT reason, count(*), sum(times_seen), max(last_seen_at) FROM mes.dead_letters "
            f"WHERE {shown} GROUP BY reason ORDER BY count(*) DESC").fetchall()
        rows = conn.execute(
            f"SELECT id, reason, topic, received_at, times_seen, last_seen_at, replayed_at, "
            f"detail FROM mes.dead_letters WHERE {shown} "
            "AND (%(r)s::text IS NULL OR reason = %(r)s) "
            "ORDER BY last_seen_at DESC, id DESC LIMIT %(n)s",
            {"r": args.reason, "n": args.limit}).fetchall()
    print(f"{args.shown} dead letters by reason")
    print(f"{'reason':28} {'letters':>7} {'seen':>7}  last seen")
    for reason, n, seen, last in summary:
        print(f"{reason:28} {n:7} {seen:7}  {_at(last)}")
    print()
    for id_, reason, topic, first, seen, last, replayed, detail in rows:
        print(f"#{id_} {reason} {topic}\n    first {_at(first)}, seen {seen} time(s), last "
              f"{_at(last)}" + (f", replayed {_at(replayed)}" if replayed else "")
              + f"\n    {detail[:200]}")
    return 0


def cmd_dead_letters_replay(args: argparse.Namespace) -> int:
    """Replay the chosen dead letters; 0 when every one named was replayed now, 1 otherwise
    (nothing matched, some still refused, or named ones unknown or already replayed), each
    case said in a line of its own."""
    from core.intake.replay import choose, replay

    settings, conn = _owner(args)
    with conn:
        letters, unmatched = choose(conn, args.ids, args.reason)
        outcomes = (replay(settings.database.application_url(), settings.ingest, letters)
                    if letters else [])
        done = [i for i, ok, _ in outcomes if ok]
        if done:
            conn.execute("UPDATE mes.dead_letters SET replayed_at = %s WHERE id = ANY(%s)",
                         (datetime.now(UTC), done))
    for note in unmatched:
        print(note)
    for id_, ok, what in outcomes:
        print(f"#{id_}: {'replayed' if ok else 'still refused'}: {what}")
    print(f"{len(done)} of {len(outcomes)} replayed")
    return 0 if done and len(done) == len(outcomes) and not unmatched else 1
