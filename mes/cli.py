"""The `mes` command: one entry point, a subcommand per part.

Each part contributes its subcommands through a `register(subparsers)` function in its own
`cli` module, listed in COMMANDS with the command it adds; this module only builds the parser
and turns the errors a user can act on into messages and exit statuses instead of tracebacks.
A command whose optional dependencies are not installed (an edge-only gateway has no database
driver) is still listed and says which extra it needs (mes/cli_extras.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.config_errors import ConfigError
from core.errors import UserFacingError
from mes.cli_extras import register_command

# (command, the module whose register() adds it); tests/test_cli_extras.py checks the pairs.
COMMANDS = [
    ("db", "mes.db_cli"),
    ("registry", "mes.registry_cli"),
    ("token", "mes.token_cli"),
    ("demo", "mes.demo"),
    ("ingest", "ingest.cli"),
    ("maintenance", "ingest.maintenance.cli"),
    ("api", "api.cli"),
    ("sim", "mes.sim.cli"),
    ("edge", "edge_agent.cli"),
    ("bench", "mes.bench_cli"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mes", description="Plant-floor data collection: edge agent, ingest, API."
    )
    parser.add_argument("--config", metavar="FILE", help="settings file (TOML); also $MES_CONFIG")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, module in COMMANDS:
        register_command(sub, command, module)
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
