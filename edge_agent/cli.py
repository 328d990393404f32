"""The `mes edge` commands (registered in mes.cli.COMMANDS)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add `mes edge ...` to the `mes` parser."""
    edge = subparsers.add_parser("edge", help="the edge agent: check and run tag maps")
    commands = edge.add_subparsers(dest="edge_command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="validate a tag map, read every tag once and print a table",
        description="Validate the tag map (exit 2 if invalid), connect to every device, read "
        "every tag once and print device, machine, tag, value and error. Exit 0 when every "
        "tag was read, 1 otherwise.",
    )
    # dest differs from the top-level --config (the settings file) so neither hides the other
    check.add_argument("--config", dest="tag_map", metavar="FILE", required=True,
                       help="the agent's tag map (.yaml, .yml or .toml)")  # fmt: skip
    check.set_defaults(func=_check)

    run = commands.add_parser(
        "run",
        help="run the agent: read the PLCs of a tag map and publish to the broker",
        description="Read every device of the tag map, derive machine states, downtime, "
        "counters and telemetry, and publish them through the durable outbox. Runs until "
        "SIGTERM or SIGINT, then stops cleanly. Starts even when PLCs or the broker are "
        "unreachable (they are retried; the outbox holds the data meanwhile).",
    )
    run.add_argument("--config", dest="tag_map", metavar="FILE", required=True,
                     help="the agent's tag map (.yaml, .yml or .toml)")  # fmt: skip
    run.add_argument("--status-port", type=int, metavar="PORT",
                     help="serve /health and /metrics here (default: none)")  # fmt: skip
    run.add_argument("--status-host", default="127.0.0.1", metavar="HOST",
                     help="address of the status endpoint (default 127.0.0.1)")  # fmt: skip
    run.add_argument("--log-level", default="info",
                     choices=("debug", "info", "warning", "error"))  # fmt: skip
    run.add_argument("--log-format", default="json", choices=("json", "text"))
    run.set_defaults(func=_run)


def _check(args: argparse.Namespace) -> int:
    from edge_agent.check import check

    return check(args.tag_map, sys.stdout)


def _run(args: argparse.Namespace) -> int:
    from core.logging import configure
    from edge_agent.tagmap import load_agent_config

    configure(args.log_level, args.log_format)
    config = load_agent_config(args.tag_map)
    asyncio.run(_serve(config, args.status_host, args.status_port))
    return 0


async def _serve(config: Any, status_host: str, status_port: int | None) -> None:
    """Run the agent (and its status endpoint) until SIGTERM or SIGINT."""
    from core.errors import UserFacingError
    from core.status_server import StatusServer
    from edge_agent.agent import EdgeAgent
    from edge_agent.delivery.outbox import OutboxInUse

    try:
        agent = EdgeAgent(config)
    except OutboxInUse as e:
        raise UserFacingError(f"{e}: is another agent for this gateway running?") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    status = None
    try:
        if status_port is not None:
            status = StatusServer(status_host, status_port, agent.health, agent.registry,
                                  setting="--status-port").start()
        await agent.run(stop)
    finally:
        if status is not None:
            status.stop()
