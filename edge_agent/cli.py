"""The `mes edge` commands (registered in mes.cli.COMMANDS)."""

from __future__ import annotations

import argparse
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


def _check(args: argparse.Namespace) -> int:
    from edge_agent.check import check

    return check(args.tag_map, sys.stdout)
