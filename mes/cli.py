"""The `mes` command: one entry point, a subcommand per part.

Each part contributes its subcommands through a `register(subparsers)` function in its own
`cli` module, listed in COMMANDS; this module only builds the parser and turns the errors a
user can act on into messages and exit statuses instead of tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from core.config_errors import ConfigError
from core.errors import UserFacingError

COMMANDS = [
    "mes.db_cli",
    "mes.registry_cli",
    "mes.token_cli",
    "mes.demo",
    "ingest.cli",
    "ingest.maintenance.cli",
    "mes.sim.cli",
    "edge_agent.cli",
    "mes.bench_cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mes", description="Plant-floor data collection: edge agent, ingest, API."
    )
    parser.add_argument("--config", metavar="FILE", help="settings file (TOML); also $MES_CONFIG")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    except UserFacingError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
